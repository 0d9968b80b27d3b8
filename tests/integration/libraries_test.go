//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// Every library of the runtime, used once for what analysts use it for, in
// every mode: the modules load in the jail (their shared objects are in its
// tree), and work within its limits and without a network or a writable
// runtime.
func TestEveryLibraryWorksInTheJail(t *testing.T) {
	for _, mode := range []string{"cold", "pool", "fork"} {
		t.Run(mode, func(t *testing.T) {
			ts := testsupport.StartService(t, map[string]string{"PYEXEC_MODE": mode, "PYEXEC_TIMEOUT_SECONDS": "30", "PYEXEC_QUEUE": "64"})
			xlsx := workbook(t, ts)
			for _, tt := range []struct {
				name   string
				script string
				files  []map[string]string
				result string
			}{
				{
					name: "a scipy curve fit",
					script: "import numpy as np\nfrom scipy.optimize import curve_fit\n\n" +
						"def main():\n    x = np.linspace(0, 10, 50)\n    y = 3.0 * x + 2.0\n" +
						"    (a, b), _ = curve_fit(lambda x, a, b: a * x + b, x, y)\n    return [round(float(a), 6), round(float(b), 6)]\n",
					result: "[3.0,2.0]",
				},
				{
					name: "a scikit-learn model",
					script: "import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n\n" +
						"def main():\n    X = np.array([[0.0], [1.0], [2.0], [8.0], [9.0], [10.0]])\n    y = np.array([0, 0, 0, 1, 1, 1])\n" +
						"    model = LogisticRegression().fit(X, y)\n    return model.predict([[0.5], [9.5]]).tolist()\n",
					result: "[0,1]",
				},
				{
					name: "a Parquet round trip through outputs/",
					script: "import os\nimport pandas as pd\n\n" +
						"def main():\n    os.makedirs('outputs', exist_ok=True)\n    df = pd.DataFrame({'city': ['Oslo', 'Lima'], 'temp': [4.5, 19.0]})\n" +
						"    df.to_parquet('outputs/cities.parquet')\n    back = pd.read_parquet('outputs/cities.parquet')\n" +
						"    return back.to_dict(orient='records')\n",
					result: `[{"city":"Oslo","temp":4.5},{"city":"Lima","temp":19.0}]`,
				},
				{
					name:   "an uploaded xlsx read with openpyxl",
					script: "import pandas as pd\n\ndef main():\n    df = pd.read_excel('sales.xlsx', engine='openpyxl')\n    return {'rows': len(df), 'total': int(df['amount'].sum())}\n",
					files:  []map[string]string{{"path": "sales.xlsx", "content": xlsx, "encoding": "base64"}},
					result: `{"rows":3,"total":60}`,
				},
				{
					name: "a matplotlib chart saved as PNG",
					script: "import matplotlib\nimport matplotlib.pyplot as plt\n\n" +
						"def main():\n    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)\n    ax.plot([1, 2, 3])\n    fig.savefig('chart.png')\n" +
						"    with open('chart.png', 'rb') as f:\n        head = f.read(8)\n    return [matplotlib.get_backend(), head == b'\\x89PNG\\r\\n\\x1a\\n']\n",
					result: `["Agg",true]`,
				},
			} {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					req := map[string]any{"script": tt.script}
					if tt.files != nil {
						req["files"] = tt.files
					}
					body, err := json.Marshal(req)
					if err != nil {
						t.Fatal(err)
					}
					r := ts.Post(t, "/execute", "application/json", body)
					if r.Status != http.StatusOK || string(r.Result) != tt.result {
						t.Errorf("%s mode: %s = %d %s, want 200 with result %s", mode, tt.name, r.Status, testsupport.Clip(r.Raw), tt.result)
					}
				})
			}
		})
	}
}

// matplotlib finds the font list built at install in its per-execution
// cache directory, so no execution builds (or shares) one. The directory is
// made in the execution's private tmpfs when matplotlib is imported, and
// only then: it is outside the working directory, and before the import
// the tmpfs is as empty as for any script.
func TestMatplotlibUsesTheFontListBuiltAtInstall(t *testing.T) {
	for _, mode := range []string{"cold", "fork"} {
		t.Run(mode, func(t *testing.T) {
			ts := testsupport.StartService(t, map[string]string{"PYEXEC_MODE": mode})
			script := "import os\n\ndef main():\n" +
				"    cache = os.environ['MPLCONFIGDIR']\n" +
				"    before = os.path.exists(cache)\n" +
				"    import matplotlib.font_manager as fm\n" +
				"    linked = sorted(n for n in os.listdir(cache) if os.path.islink(os.path.join(cache, n)))\n" +
				"    return {'before': before, 'cwd': sorted(os.listdir('.')), 'linked': [n.startswith('fontlist-') for n in linked],\n" +
				"            'fonts': len(fm.fontManager.ttflist) > 0, 'only links': sorted(os.listdir(cache)) == linked}\n"
			r := ts.Execute(t, script)
			want := `{"before":false,"cwd":[],"linked":[true],"fonts":true,"only links":true}`
			if r.Status != http.StatusOK || string(r.Result) != want {
				t.Errorf("%s mode: font list = %d %s, want 200 with result %s", mode, r.Status, testsupport.Clip(r.Raw), want)
			}
		})
	}
}

// /healthz reports the version of every library scripts can import.
func TestHealthzReportsEveryLibrary(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := testsupport.Do(t, req)
	var body struct {
		Versions executor.Versions `json:"versions"`
	}
	if err := json.Unmarshal(r.Raw, &body); err != nil {
		t.Fatalf("GET /healthz body %s: %v", r.Raw, err)
	}
	v := body.Versions
	for name, got := range map[string]string{"matplotlib": v.Matplotlib, "scipy": v.Scipy, "scikit-learn": v.ScikitLearn, "pyarrow": v.Pyarrow, "openpyxl": v.Openpyxl} {
		if got == "" {
			t.Errorf("GET /healthz versions = %+v, want a version of %s", v, name)
		}
	}
}

// workbook is an xlsx file of three sales, base64, as an execution that
// wrote it with openpyxl returned it from outputs/.
func workbook(t *testing.T, ts *testsupport.Service) string {
	t.Helper()
	r := ts.Execute(t, "import os\nfrom openpyxl import Workbook\n\ndef main():\n"+
		"    wb = Workbook()\n    ws = wb.active\n    for row in [('region', 'amount'), ('north', 10), ('south', 20), ('west', 30)]:\n        ws.append(row)\n"+
		"    os.makedirs('outputs', exist_ok=True)\n    wb.save('outputs/sales.xlsx')\n")
	var body struct {
		Files []struct {
			Path    string `json:"path"`
			Content string `json:"content"`
		} `json:"files"`
	}
	if err := json.Unmarshal(r.Raw, &body); err != nil || r.Status != http.StatusOK || len(body.Files) != 1 || body.Files[0].Path != "outputs/sales.xlsx" {
		t.Fatalf("writing an xlsx = %d %s (%v), want 200 with outputs/sales.xlsx", r.Status, testsupport.Clip(r.Raw), err)
	}
	return body.Files[0].Content
}
