package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// readmeSnippet returns the README's "Use it from your own page" snippet.
func readmeSnippet(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Use it from your own page")
	_, block, ok2 := strings.Cut(section, "```html\n")
	snippet, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README: no html snippet under \"Use it from your own page\"")
	}
	return snippet
}

// npmPack packs clients/js as npm would publish it and returns the files of
// the package, by name.
func npmPack(t *testing.T) map[string][]byte {
	t.Helper()
	npm := needBinary(t, "npm", "npm")
	dir := t.TempDir()
	cmd := exec.Command(npm, "pack", "--pack-destination", dir)
	cmd.Dir = filepath.Join("..", "..", "clients", "js")
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(dir, "cache"), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm pack: %v\n%s", err, out)
	}
	tgz, err := filepath.Glob(filepath.Join(dir, "*.tgz"))
	if err != nil || len(tgz) != 1 {
		t.Fatalf("npm pack made %v", tgz)
	}
	f, err := os.Open(tgz[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "package/")] = b
	}
	return files
}

// TestOwnPage: a page of another origin runs the README's snippet as it
// stands, importing the client from the broker, and the same snippet
// importing the client as npm packs it; each calls the echo bot and hears
// it. The broker allows the page's origin, as the README says it must.
func TestOwnPage(t *testing.T) {
	chromium := needBinary(t, "chromium", os.Getenv("CHROMIUM"), "/usr/bin/chromium-browser", "chromium")
	pkg := npmPack(t)
	for _, name := range []string{"package.json", "switchboard.js", "switchboard.d.ts"} {
		if len(pkg[name]) == 0 {
			t.Fatalf("npm pack left out %s (packed: %v)", name, keys(pkg))
		}
	}
	for _, want := range []string{`"exports"`, `"types"`, `"files"`, `"license": "MIT"`, `"repository"`, `"version"`} {
		if !strings.Contains(string(pkg["package.json"]), want) {
			t.Errorf("package.json lacks %s", want)
		}
	}
	snippet := readmeSnippet(t)

	var pages *httptest.Server
	pages = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/node_modules/@switchboard-rtc/client/switchboard.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(pkg["switchboard.js"])
		default:
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, "<!doctype html><title>own page</title>\n<script>window.logs = []; const log = console.log; console.log = (...a) => { window.logs.push(a.join(\" \")); log(...a); }; addEventListener(\"unhandledrejection\", (e) => window.logs.push(\"refused \" + e.reason?.code + \": \" + e.reason?.message)); addEventListener(\"error\", (e) => window.logs.push(\"refused \" + e.error?.code + \": \" + e.error?.message));</script>\n%s",
				pageSnippet(t, snippet, r.URL.Query().Get("broker"), r.URL.Query().Get("peer"), r.URL.Query().Get("packed") == "1"))
		}
	}))
	defer pages.Close()

	addr := freeAddr(t)
	broker := "http://" + addr
	p := spawn(t, []string{"SWITCHBOARD_LISTEN=" + addr, "SWITCHBOARD_ALLOWED_ORIGINS=" + pages.URL}, "serve")
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command(binary(t), "health", "-url", broker).Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("broker not ready:\n%s", p.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	bot := spawn(t, nil, "peer", "-url", broker, "-room", "demo", "-peer", "bot", "-echo", "-loopback")
	waitOutput(t, bot, "joined room=demo peer=bot", 30*time.Second)

	actx, cancelA := chromiumAllocator(t, chromium)
	defer cancelA()
	browser, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	for i, packed := range []string{"0", "1"} {
		tab, cancel := chromedp.NewContext(browser)
		defer cancel()
		tab, cancelT := context.WithTimeout(tab, 90*time.Second)
		defer cancelT()
		url := fmt.Sprintf("%s/?broker=%s&peer=me%d&packed=%s", pages.URL, broker, i, packed)
		if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			if ok, err := chromedp.Run(tab, chromedp.Evaluate[bool](`window.logs.includes("bot says hello")`)); err == nil && ok {
				break
			}
			if time.Now().After(deadline) {
				logs, _ := chromedp.Run(tab, chromedp.Evaluate[string](`JSON.stringify(window.logs)`))
				t.Fatalf("packed=%s: the page never heard the bot; logs %s\nbot:\n%s", packed, logs, bot.out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The same page from an origin the broker does not allow (localhost is
	// not 127.0.0.1), with the packaged client (the broker's /client/ is
	// refused to it too), hears forbidden naming allowed_origins, not
	// unreachable.
	other := strings.Replace(pages.URL, "127.0.0.1", "localhost", 1)
	tab, cancel := chromedp.NewContext(browser)
	defer cancel()
	tab, cancelT := context.WithTimeout(tab, 90*time.Second)
	defer cancelT()
	if err := chromedp.Do(tab, chromedp.Navigate(fmt.Sprintf("%s/?broker=%s&peer=stranger&packed=1", other, broker))); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		logs, _ := chromedp.Run(tab, chromedp.Evaluate[string](`JSON.stringify(window.logs)`))
		if strings.Contains(logs, "refused forbidden") && strings.Contains(logs, "allowed_origins") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a page of a refused origin: logs %s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pageSnippet is the README's snippet with the broker's address in place
// of localhost:8080, its own peer id, and, when packed, the client imported
// as a page would from its installed package.
func pageSnippet(t *testing.T, snippet, broker, peer string, packed bool) string {
	s := strings.ReplaceAll(snippet, "http://localhost:8080", broker)
	s = strings.Replace(s, `peer: "me"`, `peer: "`+peer+`"`, 1)
	if packed {
		s = strings.Replace(s, broker+"/client/switchboard.js", "/node_modules/@switchboard-rtc/client/switchboard.js", 1)
	}
	if s == snippet {
		t.Errorf("the README snippet changed shape: %s", snippet)
	}
	return s
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}
