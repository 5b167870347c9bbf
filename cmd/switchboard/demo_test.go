package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// The compose demo's topology, run natively with the compose demo's own
// configuration files (deploy/): a real redis-server, two switchboard
// nodes in cluster mode, Debian's nginx in front of them with
// deploy/nginx/switchboard.conf.template, the echo bot, and headless
// Chromium loading the demo page through the load balancer.

// needBinary finds a program the test needs: under CI a missing one fails
// the test (.ci/run installs it), elsewhere the test skips.
func needBinary(t *testing.T, pkg string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if n == "" {
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed: .ci/run installs Debian's %s package", names[len(names)-1], pkg)
	}
	t.Skipf("%s is not installed", pkg)
	return ""
}

// freeAddrs returns n distinct free loopback addresses.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// demoNode starts one broker node as docker-compose.yml does: serve with
// deploy/node.yaml, its Redis and listeners moved to loopback ports by the
// environment. It returns the node's host:port once it is ready.
func demoNode(t *testing.T, redisURL, id, transports string, extra ...string) string {
	t.Helper()
	addr := freeAddr(t)
	env := append([]string{
		"SWITCHBOARD_LISTEN=" + addr,
		"SWITCHBOARD_NODE_ID=" + id,
		"SWITCHBOARD_TRANSPORTS=" + transports,
		"SWITCHBOARD_CLUSTER_REDIS_URL=" + redisURL,
		"SWITCHBOARD_TRANSPORTS_REDIS_URL=" + redisURL,
	}, extra...)
	p := spawn(t, env, "serve", "-config", filepath.Join("..", "..", "deploy", "node.yaml"))
	deadline := time.Now().Add(60 * time.Second)
	for {
		h := exec.Command(binary(t), "health", "-url", "http://"+addr)
		if h.Run() == nil {
			return addr
		}
		if p.cmd.ProcessState != nil || strings.Contains(p.out.String(), `"msg":"stopped"`) {
			t.Fatalf("node %s exited:\n%s", id, p.out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s never became ready:\n%s", id, p.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startNginx runs nginx in the foreground on lb, in front of the nodes,
// with the compose demo's proxy configuration filled in as the nginx image
// fills it in. It returns the path of its access log, one line per request:
// method, URI, the node that served it, status.
func startNginx(t *testing.T, lb string, nodes ...string) string {
	t.Helper()
	bin := needBinary(t, "nginx", os.Getenv("NGINX"), "/usr/sbin/nginx", "nginx")
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nginx", "switchboard.conf.template"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"SWITCHBOARD_NODE1": nodes[0], "SWITCHBOARD_NODE2": nodes[1], "SWITCHBOARD_LB_LISTEN": lb}
	conf := os.Expand(string(tmpl), func(name string) string {
		if v, ok := vars[name]; ok {
			return v
		}
		return "$" + name // nginx's own variables, as envsubst leaves them
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "switchboard.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	access := filepath.Join(dir, "access.log")
	main := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 512; }
http {
    log_format upstreams '$request_method $uri $upstream_addr $status';
    access_log %[2]s upstreams;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/switchboard.conf;
}
`, dir, access)
	if os.Geteuid() == 0 {
		main = "user root;\n" + main // the workers write to the test's own directory
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	ownProcessGroup(cmd) // so that the workers go with the master
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killProcessGroup(cmd)
		_ = cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out, log)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command(binary(t), "health", "-url", "http://"+lb).Run() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx on %s never passed a ready node:\n%s\n%s", lb, out, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return access
}

// TestDemoTopology: Chromium loads the demo page through nginx and calls
// the bot; a long-poll peer, whose requests nginx spreads over both nodes,
// calls it too.
func TestDemoTopology(t *testing.T) {
	chromium := needBinary(t, "chromium", os.Getenv("CHROMIUM"), "/usr/bin/chromium-browser", "chromium")
	srv := redistest.Start(t)
	mail := freeAddrs(t, 2)
	node1 := demoNode(t, srv.URL(), "node1", "websocket,longpoll,redis,email",
		"SWITCHBOARD_TRANSPORTS_EMAIL_EMBEDDED_SMTP_LISTEN="+mail[0],
		"SWITCHBOARD_TRANSPORTS_EMAIL_EMBEDDED_IMAP_LISTEN="+mail[1])
	node2 := demoNode(t, srv.URL(), "node2", "websocket,longpoll,redis")
	lb := freeAddr(t)
	access := startNginx(t, lb, node1, node2)
	base := "http://" + lb

	bot := spawn(t, nil, "peer", "-url", base, "-room", "demo", "-peer", "bot", "-echo", "-retry", "1m", "-loopback")
	waitOutput(t, bot, "joined room=demo peer=bot", 30*time.Second)

	// The demo page, through the load balancer, calls the bot on WebSocket.
	actx, cancelA := chromiumAllocator(t, chromium)
	defer cancelA()
	page, cancelP := chromedp.NewContext(actx)
	defer cancelP()
	page, cancelT := context.WithTimeout(page, 120*time.Second)
	defer cancelT()
	url := base + "/?room=demo&name=visitor&transport=websocket&media=none"
	if err := chromedp.Do(page, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#join")), chromedp.Click(chromedp.CSS("#join"))); err != nil {
		t.Fatalf("opening the demo page at %s: %v", url, err)
	}
	pageWait := func(what, js string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			if ok, err := chromedp.Run(page, chromedp.Evaluate[bool](js)); err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				state, _ := chromedp.Run(page, chromedp.Evaluate[string](`JSON.stringify({status: document.querySelector("#status")?.textContent, chat: demo.chat, log: document.querySelector("#log")?.textContent.slice(-2000)})`))
				t.Fatalf("the demo page: waiting for %s; page: %s\nbot:\n%s", what, state, bot.out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	pageWait("the join", `document.querySelector("#status").dataset.state === "open"`, 30*time.Second)
	pageWait("the bot in the list", `!!document.querySelector('#peers button[data-peer="bot"]')`, 20*time.Second)
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS(`#peers button[data-peer="bot"]`))); err != nil {
		t.Fatal(err)
	}
	pageWait("the data channel", `demo.channel?.readyState === "open"`, 45*time.Second)
	if err := chromedp.Do(page, chromedp.SendKeys(chromedp.CSS("#chat-input"), "hello bot"), chromedp.Click(chromedp.CSS("#chat-send"))); err != nil {
		t.Fatal(err)
	}
	pageWait("the bot's echo", `demo.chat.some(c => c.from === "bot" && c.text === "hello bot")`, 20*time.Second)
	// The page's polish: the bot, which joins with no page of its own, shows
	// its transport; a data-only call draws no empty video box; acks and
	// pings are in the log but hidden until asked for.
	pageWait("the bot's transport beside its name", `document.querySelector('#peers li[data-peer="bot"] .badge')?.textContent === "websocket"`, 5*time.Second)
	pageWait("no video box in a data-only call", `document.querySelector("#remote-video").hidden && document.querySelector("#video-hint").textContent.includes("Data only")`, 5*time.Second)
	pageWait("acks hidden", `document.querySelector("#log").classList.contains("hide-control") && !document.querySelector("#log-control").checked && [...document.querySelectorAll("#log li.control")].every(li => getComputedStyle(li).display === "none")`, 5*time.Second)

	// A second tab taking the bot's name hears why, and what to do.
	second, cancelS := chromedp.NewContext(page)
	defer cancelS()
	if err := chromedp.Do(second, chromedp.Navigate(base+"/?room=demo&name=bot&transport=websocket&media=none"), chromedp.WaitVisible(chromedp.CSS("#join")), chromedp.Click(chromedp.CSS("#join"))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		text, _ := chromedp.Run(second, chromedp.Evaluate[string](`document.querySelector('.banner[data-kind="peer-id-taken"]')?.textContent ?? ""`))
		if strings.Contains(text, "resume window") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no peer-id-taken banner naming the resume window; got %q", text)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A long-poll peer calls the bot through the balancer, which sends its
	// requests to either node in turn.
	caller := spawn(t, nil, "peer", "-url", base, "-room", "demo", "-peer", "poller", "-transport", "longpoll", "-loopback",
		"-call", "bot", "-send", "hello over long-poll", "-exit-after-message")
	waitOutput(t, caller, `message-received peer=bot text="hello over long-poll"`, 60*time.Second)
	log, err := os.ReadFile(access)
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]int{}
	for _, line := range strings.Split(string(log), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && strings.HasPrefix(f[1], "/v1/sessions") {
			served[f[2]]++
		}
	}
	if served[node1] == 0 || served[node2] == 0 {
		t.Fatalf("long-poll requests by node: %v, want both %s and %s; access log:\n%s", served, node1, node2, log)
	}
	t.Logf("long-poll requests by node through nginx: %v", served)
}

// chromiumAllocator starts headless Chromium at path with a fresh profile,
// no background network traffic, and host ICE candidates as
// addresses rather than mDNS names; the caller must call cancel.
func chromiumAllocator(t *testing.T, path string) (context.Context, context.CancelFunc) {
	t.Helper()
	return chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
	)
}
