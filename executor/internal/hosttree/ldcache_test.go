package hosttree

import (
	"encoding/binary"
	"maps"
	"slices"
	"testing"
)

// cacheEntry is one library of a test cache.
type cacheEntry struct{ name, path string }

// buildLoaderCache writes a cache as ldconfig does: the new format, after
// an old-format part when old is set.
func buildLoaderCache(entries []cacheEntry, old bool) []byte {
	le := binary.LittleEndian
	var out []byte
	if old {
		head := make([]byte, ldCacheOldHeader)
		copy(head, ldCacheOldMagic)
		le.PutUint32(head[12:], uint32(len(entries)))
		out = append(head, make([]byte, len(entries)*ldCacheOldEntry)...)
		for len(out)%8 != 0 {
			out = append(out, 0)
		}
	}
	newPart := make([]byte, ldCacheNewHeader+len(entries)*ldCacheNewEntry)
	copy(newPart, ldCacheNewMagic)
	le.PutUint32(newPart[20:], uint32(len(entries)))
	var strs []byte
	offset := func(s string) uint32 {
		off := uint32(len(newPart) + len(strs))
		strs = append(append(strs, s...), 0)
		return off
	}
	for i, e := range entries {
		at := ldCacheNewHeader + i*ldCacheNewEntry
		le.PutUint32(newPart[at:], 0x0303) // ELF libc6, x86-64
		le.PutUint32(newPart[at+4:], offset(e.name))
		le.PutUint32(newPart[at+8:], offset(e.path))
	}
	le.PutUint32(newPart[24:], uint32(len(strs)))
	return append(append(out, newPart...), strs...)
}

func TestParseLoaderCacheReadsEveryEntryInOrder(t *testing.T) {
	entries := []cacheEntry{
		{"libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"},
		{"libc.so.6", "/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libc.so.6"},
		{"libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"},
		{"libc.so.6", "/lib32/libc.so.6"},
	}
	want := loaderCache{
		"libz.so.1": {"/lib/x86_64-linux-gnu/libz.so.1"},
		"libc.so.6": {"/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", "/lib32/libc.so.6"},
	}
	for _, old := range []bool{false, true} {
		got := parseLoaderCache(buildLoaderCache(entries, old))
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Errorf("parseLoaderCache(old part %v) = %v, want %v", old, got, want)
		}
	}
}

func TestParseLoaderCacheIgnoresWhatItCannotRead(t *testing.T) {
	good := buildLoaderCache([]cacheEntry{{"libz.so.1", "/lib/libz.so.1"}}, false)
	tests := map[string][]byte{
		"empty":             nil,
		"another format":    []byte("not a cache at all, but long enough to hold a header of forty-eight bytes"),
		"a cut header":      good[:30],
		"cut entries":       good[:ldCacheNewHeader+10],
		"cut strings":       good[:len(good)-3],
		"an old part alone": buildLoaderCache(nil, true)[:ldCacheOldHeader],
	}
	for name, data := range tests {
		got := parseLoaderCache(data)
		for soname, paths := range got {
			// Only a whole, NUL-terminated string may come back.
			if soname != "libz.so.1" || !slices.Equal(paths, []string{"/lib/libz.so.1"}) {
				t.Errorf("%s: parseLoaderCache = %v, want nothing or the one whole entry", name, got)
			}
		}
		if name != "cut strings" && len(got) != 0 {
			t.Errorf("%s: parseLoaderCache = %v, want nothing", name, got)
		}
	}
}

func FuzzParseLoaderCache(f *testing.F) {
	f.Add(buildLoaderCache([]cacheEntry{{"libz.so.1", "/lib/libz.so.1"}}, false))
	f.Add(buildLoaderCache([]cacheEntry{{"libc.so.6", "/lib/libc.so.6"}, {"libm.so.6", "/lib/libm.so.6"}}, true))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, paths := range parseLoaderCache(data) {
			if len(paths) == 0 {
				t.Error("a library listed with no path")
			}
		}
	})
}
