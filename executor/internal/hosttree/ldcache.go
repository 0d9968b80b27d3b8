package hosttree

import (
	"bytes"
	"encoding/binary"
	"os"
)

// loaderCache is glibc's /etc/ld.so.cache as the dynamic loader reads it:
// for each library name, the paths ldconfig found it at, in the cache's
// order (the same name may be listed for several hardware capabilities or
// architectures).
type loaderCache map[string][]string

// The cache's formats (glibc's sysdeps/generic/dl-cache.h): the old one,
// which older ldconfigs wrote first, and the new one, which every glibc
// since 2.32 writes alone and the loader prefers.
const (
	ldCacheOldMagic = "ld.so-1.7.0"
	ldCacheNewMagic = "glibc-ld.so.cache1.1"

	ldCacheOldHeader = 16 // magic[11], padding, uint32 nlibs
	ldCacheOldEntry  = 12 // int32 flags, uint32 key, uint32 value
	ldCacheNewHeader = 48 // magic+version[20], nlibs, len_strings, flags, padding, extension offset, unused[3]
	ldCacheNewEntry  = 24 // flags, key, value, osversion, uint64 hwcap
)

// readLoaderCache reads the cache at path. A missing or unreadable cache
// is an empty one: the loader then looks in its default directories only.
func readLoaderCache(path string) loaderCache {
	data, err := os.ReadFile(path)
	if err != nil {
		return loaderCache{}
	}
	return parseLoaderCache(data)
}

// parseLoaderCache reads the new format's entries, skipping an old-format
// part before them. Entries that point outside the data are ignored.
func parseLoaderCache(data []byte) loaderCache {
	cache := loaderCache{}
	le := binary.LittleEndian
	start := 0
	if bytes.HasPrefix(data, []byte(ldCacheOldMagic)) && len(data) >= ldCacheOldHeader {
		n := int(le.Uint32(data[12:16]))
		start = ldCacheOldHeader + n*ldCacheOldEntry
		start = (start + 7) &^ 7 // the new part is aligned for its uint64s
	}
	if start < 0 || start+ldCacheNewHeader > len(data) || !bytes.HasPrefix(data[start:], []byte(ldCacheNewMagic)) {
		return cache
	}
	newPart := data[start:]
	str := func(off uint32) (string, bool) {
		if int64(off) >= int64(len(newPart)) {
			return "", false
		}
		s := newPart[off:]
		end := bytes.IndexByte(s, 0)
		if end < 0 {
			return "", false
		}
		return string(s[:end]), true
	}
	n := int(le.Uint32(newPart[20:24]))
	for i := 0; i < n; i++ {
		at := ldCacheNewHeader + i*ldCacheNewEntry
		if at+ldCacheNewEntry > len(newPart) {
			break
		}
		key, okKey := str(le.Uint32(newPart[at+4:]))
		value, okValue := str(le.Uint32(newPart[at+8:]))
		if okKey && okValue {
			cache[key] = append(cache[key], value)
		}
	}
	return cache
}
