package uids

import (
	"strings"
	"testing"
)

// The whole 32-bit space mapped onto itself: a host, or a container in the
// host's user namespace.
const wholeMap = "         0          0 4294967295\n"

// Cloud Run's jobs and worker pools: only 0-65535, onto a host range.
const cloudRunMap = "         0     100000      65536\n"

func TestChooseOutsideIDs(t *testing.T) {
	tests := []struct {
		name           string
		facts          Facts
		concurrency    int
		wantFork       int
		wantCold       string
		wantPool       string
		wantFirstBlock int // the lowest id taken, to check the block is the highest free one
	}{
		{
			name:        "the preferred runs where everything is mapped",
			facts:       Facts{uidMap: wholeMap, gidMap: wholeMap},
			concurrency: 4,
			wantFork:    199999, wantCold: "200000-200003", wantPool: "201024-201032",
		},
		{
			name: "the preferred runs where a map covers just them",
			facts: Facts{uidMap: "0 0 1\n199999 300000 5\n201024 400000 9\n",
				gidMap: "0 0 1\n199990 300000 1100\n"},
			concurrency: 4,
			wantFork:    199999, wantCold: "200000-200003", wantPool: "201024-201032",
		},
		{
			name:        "the top of 0-65535 below nobody where only that is mapped",
			facts:       Facts{uidMap: cloudRunMap, gidMap: cloudRunMap},
			concurrency: 4,
			wantFork:    65520, wantCold: "65521-65524", wantPool: "65525-65533",
		},
		{
			name:        "one slot takes five ids",
			facts:       Facts{uidMap: cloudRunMap, gidMap: cloudRunMap},
			concurrency: 1,
			wantFork:    65529, wantCold: "65530", wantPool: "65531-65533",
		},
		{
			name:        "the largest concurrency still fits below nobody",
			facts:       Facts{uidMap: cloudRunMap, gidMap: cloudRunMap},
			concurrency: MaxConcurrency,
			wantFork:    65533 - 3*MaxConcurrency - 1, wantCold: "62461-63484", wantPool: "63485-65533",
		},
		{
			name:        "ids must be mapped as gids too",
			facts:       Facts{uidMap: cloudRunMap, gidMap: "0 100000 65000\n"},
			concurrency: 4,
			wantFork:    64986, wantCold: "64987-64990", wantPool: "64991-64999",
		},
		{
			name:        "a block may span two lines of a map",
			facts:       Facts{uidMap: "0 100000 65525\n65525 300000 11\n", gidMap: cloudRunMap},
			concurrency: 4,
			wantFork:    65520, wantCold: "65521-65524", wantPool: "65525-65533",
		},
		{
			name: "ids of the container's accounts and groups are skipped",
			facts: Facts{uidMap: cloudRunMap, gidMap: cloudRunMap,
				passwd: "root:x:0:0:root:/root:/bin/bash\napp:x:65530:1000::/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
				group:  "root:x:0:\nbuilders:x:65512:app\nnogroup:x:65534:\n"},
			concurrency: 4,
			// Free runs: 65531-65533 (3), 65513-65529 (17); the block is the
			// highest 14 of the second.
			wantFork: 65516, wantCold: "65517-65520", wantPool: "65521-65529",
		},
		{
			name: "an account in the preferred runs moves them all",
			facts: Facts{uidMap: wholeMap, gidMap: wholeMap,
				passwd: "svc:x:200002:200002::/:/bin/false\n"},
			concurrency: 4,
			wantFork:    65520, wantCold: "65521-65524", wantPool: "65525-65533",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := Choose(tt.facts, tt.concurrency)
			if err != nil {
				t.Fatalf("Choose = %v, want ids", err)
			}
			if got := ids.Describe("fork"); got != itoa(tt.wantFork) {
				t.Errorf("fork server id = %s, want %d", got, tt.wantFork)
			}
			if got := ids.Describe("cold"); got != tt.wantCold {
				t.Errorf("cold ids = %s, want %s", got, tt.wantCold)
			}
			if got := ids.Describe("pool"); got != tt.wantPool {
				t.Errorf("pool ids = %s, want %s", got, tt.wantPool)
			}
			assertUsableIDs(t, ids, tt.facts)
		})
	}
}

// assertUsableIDs checks what every choice must hold: each id unprivileged,
// mapped as uid and gid, no account's, not nobody nor (uid_t)-1 in 16 bits,
// and no id in two runs.
func assertUsableIDs(t *testing.T, ids Outside, f Facts) {
	t.Helper()
	uids, _ := parseIDMap(f.uidMap)
	gids, _ := parseIDMap(f.gidMap)
	taken := accountIDs(f.passwd, f.group)
	seen := map[int]string{}
	for _, r := range ids.runs() {
		for id := r.first; id <= r.Last(); id++ {
			switch {
			case id < LowestBlockID:
				t.Errorf("id %d is below %d", id, LowestBlockID)
			case id == JailUID || id == 65535:
				t.Errorf("id %d is nobody or (uid_t)-1", id)
			case !mapped(uids, id) || !mapped(gids, id):
				t.Errorf("id %d is not mapped as both uid and gid", id)
			case taken[id]:
				t.Errorf("id %d belongs to an account", id)
			case seen[id] != "":
				t.Errorf("id %d is in both %s and %s", id, seen[id], r)
			}
			seen[id] = r.String()
			if err := ids.Check(id); err != nil {
				t.Errorf("Check(%d) = %v, want nil for an id of the runs", id, err)
			}
		}
	}
}

func TestChooseOutsideIDsFailsNamingWhatIsMissing(t *testing.T) {
	tests := []struct {
		name  string
		facts Facts
		want  []string
	}{
		{
			name:  "only root mapped",
			facts: Facts{uidMap: "0 100000 1\n", gidMap: "0 100000 1\n"},
			want:  []string{"outside uids 199999, 200000-200003, 201024-201032 are not mapped", "uid_map: 0 100000 1", "no free block of 14 ids"},
		},
		{
			name:  "nothing mapped above the system accounts",
			facts: Facts{uidMap: "0 100000 1000\n", gidMap: "0 100000 65536\n"},
			want:  []string{"uid_map: 0 100000 1000; gid_map: 0 100000 65536", "between 1000 and 65533"},
		},
		{
			name:  "uids mapped but no gid",
			facts: Facts{uidMap: wholeMap, gidMap: "0 0 1\n"},
			want:  []string{"not mapped as uids and gids", "gid_map: 0 0 1"},
		},
		{
			name: "every free run too short",
			facts: Facts{uidMap: "0 0 1010\n65520 65520 13\n", gidMap: cloudRunMap,
				passwd: "a:x:1005:1005::/:/bin/false\n"},
			want: []string{"no free block of 14 ids"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := Choose(tt.facts, 4)
			if err == nil {
				t.Fatalf("Choose = %s, want an error", ids)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Choose error = %q, want it to say %q", err, w)
				}
			}
		})
	}
	for _, bad := range []string{"0 0\n", "0 0 x\n", "-1 0 10\n", "0 0 65536 1\n"} {
		if _, err := Choose(Facts{uidMap: bad, gidMap: wholeMap}, 4); err == nil {
			t.Errorf("Choose with uid_map %q succeeded, want the map refused", bad)
		}
	}
}

func TestOutsideIDsCheckRefusesEverythingElse(t *testing.T) {
	ids, err := Choose(Facts{uidMap: cloudRunMap, gidMap: cloudRunMap}, 2)
	if err != nil {
		t.Fatal(err)
	}
	// 65526 fork server, 65527-65528 cold, 65529-65533 pool.
	for _, uid := range []int{0, -1, 1000, 65525, JailUID, 65535, PreferredForkServerID, PreferredColdID} {
		if err := ids.Check(uid); err == nil {
			t.Errorf("Check(%d) = nil for ids %s, want it refused", uid, ids)
		}
	}
	for _, uid := range []int{0, PreferredColdID} {
		if err := (Outside{}).Check(uid); err == nil || !strings.Contains(err.Error(), "none chosen") {
			t.Errorf("Check(%d) without chosen ids = %v, want it refused", uid, err)
		}
	}
	if got, want := ids.Cold(1), 65528; got != want {
		t.Errorf("Cold(1) = %d, want %d", got, want)
	}
	pool := NewPool(ids.Pool())
	if got := pool.Take(); got != 65529 {
		t.Errorf("the pool's first uid = %d, want 65529", got)
	}
}

func itoa(n int) string { return Range{n, 1}.String() }
