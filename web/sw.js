// The service worker: keeps the app's files for offline use.
//
// A release is the set of files release.json lists with their SHA-256.
// Installing caches every file of the current release, checked against
// its hash, in a cache named after the release's version; requests for
// the app's files are then answered from that cache, so the app opens
// offline. The API (/v1/) is never intercepted.
//
// Updates: the page asks (message "check-update") and the worker fetches
// release.json; a new version is downloaded and checked file by file
// into a new cache, and only a complete one replaces the running release
// (web/README.md: what is still to come, the check against the network's
// transparency log).

const META = 'anom-meta';
const CURRENT = new URL('./__current-release', self.registration.scope).href;

async function currentVersion() {
  const meta = await caches.open(META);
  const r = await meta.match(CURRENT);
  return r ? r.text() : null;
}

async function setCurrentVersion(v) {
  const meta = await caches.open(META);
  await meta.put(CURRENT, new Response(v));
}

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function fetchRelease() {
  const res = await fetch(new URL('release.json', self.registration.scope), { cache: 'no-store' });
  if (!res.ok) {
    throw new Error(`release.json: ${res.status}`);
  }
  return res.json();
}

// cacheRelease downloads every file of rel into the cache of its
// version, refusing a file whose SHA-256 is not the one listed; a release
// that fails leaves no cache behind.
async function cacheRelease(rel) {
  const name = 'app-' + rel.version;
  const cache = await caches.open(name);
  const scope = new URL(self.registration.scope);
  try {
    await Promise.all(Object.entries(rel.files).map(async ([path, sum]) => {
      const url = new URL('.' + path, scope).href;
      // Revalidated (a 304 when unchanged): the page has usually just
      // fetched the file, and the WebAssembly is megabytes.
      const res = await fetch(url, { cache: 'no-cache' });
      if (!res.ok) {
        throw new Error(`${path}: ${res.status}`);
      }
      const body = await res.clone().arrayBuffer();
      const got = hex(await crypto.subtle.digest('SHA-256', body));
      if (got !== sum) {
        throw new Error(`${path}: SHA-256 ${got}, release lists ${sum}`);
      }
      await cache.put(url, res);
    }));
    const releaseURL = new URL('release.json', scope).href;
    await cache.put(releaseURL, new Response(JSON.stringify(rel), { headers: { 'Content-Type': 'application/json' } }));
  } catch (err) {
    await caches.delete(name);
    throw err;
  }
}

async function dropOtherReleases(version) {
  for (const name of await caches.keys()) {
    if (name.startsWith('app-') && name !== 'app-' + version) {
      await caches.delete(name);
    }
  }
}

async function install() {
  const rel = await fetchRelease();
  await cacheRelease(rel);
  await setCurrentVersion(rel.version);
  await dropOtherReleases(rel.version);
}

async function checkUpdate() {
  const rel = await fetchRelease();
  if (rel.version === await currentVersion()) {
    return false;
  }
  await cacheRelease(rel);
  await setCurrentVersion(rel.version);
  await dropOtherReleases(rel.version);
  return true;
}

self.addEventListener('install', (event) => {
  event.waitUntil(install().then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

// A page asks for an update check with {type: "check-update"}; with a
// MessagePort it gets the outcome: {updated, version, error}.
self.addEventListener('message', (event) => {
  if (!event.data || event.data.type !== 'check-update') {
    return;
  }
  const port = event.ports && event.ports[0];
  event.waitUntil(checkUpdate().then(
    async (updated) => ({ updated, version: await currentVersion(), error: '' }),
    async (err) => ({ updated: false, version: await currentVersion(), error: String(err) }),
  ).then((outcome) => {
    if (port) {
      port.postMessage(outcome);
    }
  }));
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') {
    return;
  }
  const url = new URL(req.url);
  const scope = new URL(self.registration.scope);
  if (url.origin !== scope.origin || url.pathname.startsWith(scope.pathname + 'v1/')) {
    return;
  }
  event.respondWith((async () => {
    const v = await currentVersion();
    if (v) {
      const cache = await caches.open('app-' + v);
      let key = url.origin + url.pathname;
      if (req.mode === 'navigate' || url.pathname === scope.pathname) {
        key = new URL('index.html', scope).href;
      }
      const hit = await cache.match(key);
      if (hit) {
        return hit;
      }
    }
    return fetch(req);
  })());
});
