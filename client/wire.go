package client

import anomv1 "anom/proto/anom/v1"

// Frames whose generated names differ between protocol revisions are made
// and read here only.

func treeHeadRequest(from uint64) *anomv1.Frame {
	return &anomv1.Frame{Body: &anomv1.Frame_GetTreeHead{GetTreeHead: &anomv1.GetTreeHead{FromSize: from}}}
}

func logEntriesRequest(start, end uint64) *anomv1.Frame {
	return &anomv1.Frame{Body: &anomv1.Frame_GetLogEntries{GetLogEntries: &anomv1.GetLogEntries{Start: start, End: end}}}
}

func treeHeadOf(f *anomv1.Frame) *anomv1.TreeHead     { return f.GetTreeHead_() }
func logEntriesOf(f *anomv1.Frame) *anomv1.LogEntries { return f.GetLogEntries_() }
