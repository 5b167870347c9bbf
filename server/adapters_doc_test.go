package server_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docFile is a file of docs/adapters.md: a code block after a
// "<!-- file: path -->" line.
var docFile = regexp.MustCompile("(?s)<!-- file: (\\S+) -->\n```[a-z]*\n(.*?)\n```")

// TestAdaptersDoc does what docs/adapters.md tells a reader to, in an empty
// directory outside the repository: it writes the doc's files (go.mod's
// replace pointing at this checkout), then vets and tests the module (its
// test runs brokertest.Run), builds its binary, and checks that the binary
// serves the demo page and lists the new transport beside the built-in
// ones, and that the transport answers a join.
func TestAdaptersDoc(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module and a binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no go command")
		}
		t.Skip("no go command")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "adapters.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := docFile.FindAllSubmatch(doc, -1)
	if len(files) < 4 {
		t.Fatalf("docs/adapters.md has %d files, want go.mod, the transport, its test and a main", len(files))
	}
	for _, f := range files {
		name, body := string(f[1]), string(f[2])+"\n"
		if name == "go.mod" {
			body = regexp.MustCompile(`(?m)^replace github.com/switchboard-rtc/switchboard => .*$`).
				ReplaceAllString(body, "replace github.com/switchboard-rtc/switchboard => "+root)
		}
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(goBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("mod", "tidy")
	run("vet", "./...")
	run("test", "-count=1", "./...")
	bin := filepath.Join(dir, "switchboard-lines")
	run("build", "-o", bin, "./cmd/switchboard-lines")

	httpAddr, tcpAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "SWITCHBOARD_LISTEN="+httpAddr, "SWITCHBOARD_TRANSPORTS=websocket,longpoll,lines",
		"SWITCHBOARD_TRANSPORTS_LINES_LISTEN="+tcpAddr, "SWITCHBOARD_LOG_LEVEL=warn")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the binary exited with %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("the binary did not shut down on SIGTERM")
		}
		if t.Failed() {
			t.Logf("its output:\n%s", out)
		}
	}()
	base := "http://" + httpAddr
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the binary never became ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if page := get("/"); !strings.Contains(page, `id="transport"`) {
		t.Fatalf("the demo page:\n%s", page)
	}
	if list := get("/v1/transports"); list != `{"transports":["lines","longpoll","websocket"]}` {
		t.Fatalf("/v1/transports: %s", list)
	}
	nc, err := net.DialTimeout("tcp", tcpAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, `{"type":"join","room":"demo","payload":{"peer":"alice"}}`+"\n"); err != nil {
		t.Fatal(err)
	}
	welcome, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil || !strings.Contains(welcome, `"type":"welcome"`) || !strings.Contains(welcome, `"peer":"alice"`) {
		t.Fatalf("join over lines: %q, %v", welcome, err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
