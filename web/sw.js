// The service worker: keeps the app's files for offline use, and takes a
// new release only once the page has verified it in the network's
// transparency log.
//
// A release is the set of files release.json lists with their SHA-256;
// release-proof.json proves that the release (its version, the digest of
// those files) is in the network's transparency log. Installing caches
// every file of the release, checked against its hash, in a cache named
// after the release's version; requests for the app's files are then
// answered from the running release's cache, so the app opens offline.
// The API (/v1/) is never intercepted.
//
// The first release is taken on first use: there is nothing yet to check
// it against (web/README.md). Every later one goes through the update
// gate: the page asks ("check-update"); a new version is downloaded and
// checked file by file into a cache of its own (staged) and handed to the
// page, whose WebAssembly checks it against the log (anom.verifyRelease)
// with the pinned root key; only then does the page say "activate-release"
// and the staged release replace the running one, for the next load. A
// release the page refuses ("refuse-release") is dropped and the refusal
// recorded. The running release's version and log entry ("about") are
// recorded when the page verified it.

const META = 'anom-meta';
const scopeURL = new URL(self.registration.scope);
const key = (name) => new URL('./__' + name, scopeURL).href;

async function metaGet(name) {
  const meta = await caches.open(META);
  const r = await meta.match(key(name));
  return r ? r.text() : null;
}

async function metaPut(name, text) {
  const meta = await caches.open(META);
  await meta.put(key(name), new Response(text));
}

async function metaDelete(name) {
  const meta = await caches.open(META);
  await meta.delete(key(name));
}

async function metaJSON(name) {
  const t = await metaGet(name);
  try {
    return t ? JSON.parse(t) : null;
  } catch {
    return null;
  }
}

const currentVersion = () => metaGet('current-release');

// queue runs the page's requests one at a time.
let queue = Promise.resolve();

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

// pinnedHead is the tree head of the network's log the page verified
// last under the pinned root: {head (base64), size}, or null.
const pinnedHead = () => metaJSON('pinned-head');

// fetchRelease returns release.json's text and parsed value, and
// release-proof.json's text ('' when the server serves none), asked with
// the consistency proof from the tree of size from (the head the device
// saw last; 0: none).
async function fetchRelease(from) {
  const res = await fetch(new URL('release.json', scopeURL), { cache: 'no-store' });
  if (!res.ok) {
    throw new Error(`release.json: ${res.status}`);
  }
  const manifest = await res.text();
  const rel = JSON.parse(manifest);
  if (typeof rel.version !== 'string' || !/^[0-9a-f]{64}$/.test(rel.version) || !rel.files || typeof rel.files !== 'object') {
    throw new Error('release.json: not a release manifest');
  }
  let proof = '';
  const pu = new URL('release-proof.json', scopeURL);
  if (from > 0) {
    pu.searchParams.set('from', String(from));
  }
  const pr = await fetch(pu, { cache: 'no-store' });
  if (pr.ok) {
    proof = await pr.text();
  }
  return { manifest, rel, proof };
}

// cacheRelease downloads every file of rel into the cache of its
// version, refusing a file whose SHA-256 is not the one listed; a release
// that fails leaves no cache behind. The manifest and the proof are kept
// with it.
async function cacheRelease({ manifest, rel, proof }) {
  const name = 'app-' + rel.version;
  const cache = await caches.open(name);
  try {
    await Promise.all(Object.entries(rel.files).map(async ([path, sum]) => {
      const url = new URL('.' + path, scopeURL).href;
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
    await cache.put(new URL('release.json', scopeURL).href, new Response(manifest, { headers: { 'Content-Type': 'application/json' } }));
    await cache.put(key('proof'), new Response(proof));
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

// releaseTexts returns the manifest and proof kept with a cached release.
async function releaseTexts(version) {
  const cache = await caches.open('app-' + version);
  const m = await cache.match(new URL('release.json', scopeURL).href);
  const p = await cache.match(key('proof'));
  return { version, manifest: m ? await m.text() : '', proof: p ? await p.text() : '' };
}

// install: the first release is taken on first use. A new sw.js
// installed by the browser over a running release keeps that release:
// updates go through the gate.
// It resolves to whether this was the first install.
async function install() {
  if (await currentVersion()) {
    return false;
  }
  const head = await pinnedHead();
  const r = await fetchRelease(head ? head.size : 0);
  await cacheRelease(r);
  await metaPut('current-release', r.rel.version);
  await dropOtherReleases(r.rel.version);
  return true;
}

// state is what the page is told: the running release, its "about" (once
// verified), the pinned root, the staged release awaiting verification
// and the last refusal.
async function state() {
  const version = await currentVersion();
  const staged = await metaGet('staged-release');
  return {
    version,
    about: await metaJSON('about'),
    pinnedRoot: (await metaGet('pinned-root')) || '',
    pinnedHead: await pinnedHead(),
    running: version ? await releaseTexts(version) : null,
    staged: staged ? await releaseTexts(staged) : null,
    refused: await metaJSON('refused'),
  };
}

// checkUpdate stages the server's release when it is not the running one
// (downloaded and checked file by file; not yet served). The proof is
// asked from the tree head of size from (the page's: the unlocked
// device's), else from the pinned head's.
async function checkUpdate(from) {
  const head = await pinnedHead();
  const r = await fetchRelease(from > 0 ? from : (head ? head.size : 0));
  const running = await currentVersion();
  const staged = await metaGet('staged-release');
  if (r.rel.version === running) {
    // The server serves the running release again: a release staged
    // before is no longer offered. Its proof, from the head seen now, is
    // kept with it.
    if (staged) {
      await caches.delete('app-' + staged);
      await metaDelete('staged-release');
    }
    if (r.proof) {
      const cache = await caches.open('app-' + running);
      await cache.put(key('proof'), new Response(r.proof));
    }
    return;
  }
  if (staged !== r.rel.version) {
    if (staged) {
      await caches.delete('app-' + staged);
      await metaDelete('staged-release');
    }
    await cacheRelease(r);
    await metaPut('staged-release', r.rel.version);
  } else {
    // The same release: keep its files, take the newer proof.
    const cache = await caches.open('app-' + staged);
    await cache.put(key('proof'), new Response(r.proof));
  }
}

// activateRelease makes the staged release (or, for the running one,
// just its "about") the running release, as the page verified it: about
// is anom.verifyRelease's answer.
async function activateRelease(version, about) {
  if (!about || about.version !== version) {
    throw new Error('activate-release: the verification is not of this release');
  }
  const running = await currentVersion();
  const taken = version !== running;
  if (taken) {
    if (await metaGet('staged-release') !== version) {
      throw new Error(`activate-release: ${version} is not staged`);
    }
    await metaPut('current-release', version);
    await metaDelete('staged-release');
    await dropOtherReleases(version);
  }
  await metaPut('about', JSON.stringify({
    version, logIndex: about.logIndex, loggedAt: about.loggedAt, treeSize: about.treeSize, root: about.root,
    rootFrom: about.rootFrom === 'device' ? 'device' : 'pinned',
  }));
  // The root is pinned on first use; the unlocked device's network
  // (rootFrom "device") outranks it. The tree head proven in is pinned
  // with it when it is the larger (the page verified it consistent with
  // the one pinned, or the device's); a new root takes its head.
  const pinned = await metaGet('pinned-root');
  const newRoot = about.root && (about.rootFrom === 'device' || !pinned) && about.root !== pinned;
  if (newRoot) {
    await metaPut('pinned-root', about.root);
  }
  const head = await pinnedHead();
  if (typeof about.treeHead === 'string' && about.treeHead && Number.isSafeInteger(about.treeSize) &&
      (newRoot || about.root === (await metaGet('pinned-root'))) && (newRoot || !head || about.treeSize >= head.size)) {
    await metaPut('pinned-head', JSON.stringify({ head: about.treeHead, size: about.treeSize }));
  }
  // A refusal recorded stays until a release is taken (the running one
  // is verified again on every check).
  if (taken || !running) {
    await metaDelete('refused');
  }
}

// refuseWorker records that the page refused a service worker: its
// sw.js's SHA-256 is in no release manifest verified in the log.
async function refuseWorker(hash, error) {
  await metaPut('refused', JSON.stringify({ worker: String(hash), error: String(error), at: Date.now() }));
}

async function refuseRelease(version, error) {
  if (await metaGet('staged-release') === version) {
    await caches.delete('app-' + version);
    await metaDelete('staged-release');
  }
  await metaPut('refused', JSON.stringify({ version, error: String(error), at: Date.now() }));
}

// A worker installed on first use takes over at once. One installed over
// a running release (the browser found a changed sw.js) waits: it takes
// over only when the page, having found its SHA-256 in a release manifest
// it verified in the log, says "activate-worker" (release.js). The browser
// still activates a waiting worker once no page uses the old one (all the
// app's tabs closed); the page then checks the worker that controls it
// (web/README.md).
self.addEventListener('install', (event) => {
  event.waitUntil(install().then((first) => {
    if (first) {
      return self.skipWaiting();
    }
    return undefined;
  }));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

// Messages from the page, each answered on its MessagePort with
// {state, error}:
//   {type: "state"}                            the state alone;
//   {type: "check-update", from}               stage the server's release if new
//                                              (its proof from the tree of size from);
//   {type: "activate-release", version, about} run the staged release (verified);
//   {type: "refuse-release", version, error}   drop it, recording the refusal;
//   {type: "refuse-worker", hash, error}       record a refused new worker;
//   {type: "activate-worker"}                  (to a waiting worker) take over.
self.addEventListener('message', (event) => {
  const msg = event.data;
  if (!msg || typeof msg.type !== 'string') {
    return;
  }
  if (msg.type === 'activate-worker') {
    // The page verified this worker's sw.js: it replaces the running one.
    event.waitUntil(self.skipWaiting());
    return;
  }
  let work;
  switch (msg.type) {
    case 'state':
      work = async () => {};
      break;
    case 'check-update':
      work = () => checkUpdate(Number.isSafeInteger(msg.from) ? msg.from : 0);
      break;
    case 'activate-release':
      work = () => activateRelease(msg.version, msg.about);
      break;
    case 'refuse-release':
      work = () => refuseRelease(msg.version, msg.error);
      break;
    case 'refuse-worker':
      work = () => refuseWorker(msg.hash, msg.error);
      break;
    default:
      return;
  }
  const port = event.ports && event.ports[0];
  // One at a time: a check and an activation must not interleave.
  const run = queue.then(work).then(() => '', (err) => String(err)).then(async (error) => {
    const s = await state();
    if (port) {
      port.postMessage({ state: s, error });
    }
  });
  queue = run.catch(() => {});
  event.waitUntil(run);
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') {
    return;
  }
  const url = new URL(req.url);
  // sw.js itself goes to the server: the page hashes what the server
  // serves, which the browser installs, not the copy in the release.
  if (url.origin !== scopeURL.origin || url.pathname.startsWith(scopeURL.pathname + 'v1/') ||
      url.pathname === scopeURL.pathname + 'sw.js') {
    return;
  }
  event.respondWith((async () => {
    const v = await currentVersion();
    if (v) {
      const cache = await caches.open('app-' + v);
      let k = url.origin + url.pathname;
      if (req.mode === 'navigate' || url.pathname === scopeURL.pathname) {
        k = new URL('index.html', scopeURL).href;
      }
      const hit = await cache.match(k);
      if (hit) {
        return hit;
      }
    }
    return fetch(req);
  })());
});
