// Package mailtest starts a real mail system for one test: Dovecot (IMAP
// with IDLE, LMTP delivery into maildirs, users in a passwd-file) and Postfix
// (SMTP on a loopback port, delivering every recipient of the test domain to
// Dovecot over LMTP), each on free loopback ports, with its configuration
// and mail in a temporary directory. They run as child processes of the test,
// not as the system's services, and are stopped when the test ends.
//
// Both need root (Postfix's master cannot run as anyone else). Under
// CI=true a test fails when the binaries are missing or it does not run as
// root; otherwise it is skipped. Debian's packages are dovecot-imapd,
// dovecot-lmtpd and postfix.
package mailtest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binaries this package runs.
const (
	dovecotBin    = "/usr/sbin/dovecot"
	postfixBin    = "/usr/sbin/postfix"
	postfixMaster = "/usr/lib/postfix/sbin/master"
)

// startTimeout bounds the start of one server, on a slow shared machine.
const startTimeout = 60 * time.Second

// DefaultDomain is the mail domain of the test mailboxes unless
// Options.Domain names another.
const DefaultDomain = "localhost"

// Password is the password of every test mailbox.
const Password = "mailtest-secret"

// mailUID and mailGID own the mailboxes: the unprivileged nobody, since
// Dovecot refuses mail access as root.
const (
	mailUID = 65534
	mailGID = 65534
)

// Options configures a Server. The zero value of every field means its
// default.
type Options struct {
	// Domain is the domain whose mail Postfix delivers to Dovecot.
	// Default: DefaultDomain.
	Domain string
	// Users are the mailboxes to create: local parts (alice) or addresses of
	// Domain (alice@localhost). More can be added with AddUser.
	// Default: none.
	Users []string
}

// Server is a running Dovecot and Postfix pair. Its methods are safe for
// concurrent use.
type Server struct {
	// Dir holds the configuration, the logs, the Postfix queue and the
	// mailboxes.
	Dir string
	// Domain is the mail domain of the mailboxes.
	Domain string
	// IMAPAddr is Dovecot's IMAP listener (host:port), plain text, with
	// IDLE; users log in with their full address and Password.
	IMAPAddr string
	// LMTPAddr is Dovecot's LMTP listener (host:port).
	LMTPAddr string
	// SMTPAddr is Postfix's SMTP listener (host:port). It takes mail from
	// loopback clients without authentication, for any recipient of Domain
	// (unknown ones are bounced by Dovecot) and for the routes added with
	// Route.
	SMTPAddr string

	t testing.TB

	mu      sync.Mutex
	dovecot *process
	postfix *process
	routes  map[string]string
}

// Start starts Dovecot and Postfix with opts and stops them when t ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	need(t)
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	dir, err := os.MkdirTemp("", "mailtest-")
	if err != nil {
		t.Fatal(err)
	}
	// The mail processes run as nobody and must reach the mailboxes.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: dir, Domain: opts.Domain, t: t, routes: map[string]string{}}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("mailtest: logs kept in %s", dir)
			s.dumpLogs()
			return
		}
		_ = os.RemoveAll(dir)
	})
	ports := freePorts(t, 3)
	s.IMAPAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
	s.LMTPAddr = "127.0.0.1:" + strconv.Itoa(ports[1])
	s.SMTPAddr = "127.0.0.1:" + strconv.Itoa(ports[2])
	for _, sub := range []string{"dovecot", "dovecot/run", "dovecot/state", "mail", "postfix", "postfix/spool", "postfix/data"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "mail"), mailUID, mailGID); err != nil {
		t.Fatal(err)
	}
	if pf, err := user.Lookup("postfix"); err == nil {
		uid, _ := strconv.Atoi(pf.Uid)
		gid, _ := strconv.Atoi(pf.Gid)
		_ = os.Chown(filepath.Join(dir, "postfix", "data"), uid, gid)
	}
	if err := s.writeUsers(opts.Users); err != nil {
		t.Fatal(err)
	}
	if err := s.writeDovecotConfig(); err != nil {
		t.Fatal(err)
	}
	if err := s.writePostfixConfig(); err != nil {
		t.Fatal(err)
	}
	if err := s.startDovecot(); err != nil {
		t.Fatal(err)
	}
	if err := s.startPostfix(); err != nil {
		t.Fatal(err)
	}
	return s
}

// need fails or skips t when the servers cannot be run here.
func need(t testing.TB) {
	t.Helper()
	var problem string
	for _, bin := range []string{dovecotBin, postfixBin} {
		if _, err := os.Stat(bin); err != nil {
			problem = fmt.Sprintf("%s is not installed (apt-get install dovecot-imapd dovecot-lmtpd postfix): %v", bin, err)
		}
	}
	if problem == "" && runtime.GOOS != "linux" {
		problem = "mailtest runs the servers on Linux only"
	}
	if problem == "" && os.Geteuid() != 0 {
		problem = "Postfix and Dovecot need root to run"
	}
	if problem == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(problem)
	}
	t.Skip(problem)
}

// Address returns the address of the mailbox user (a local part or an
// address).
func (s *Server) Address(user string) string {
	if strings.Contains(user, "@") {
		return strings.ToLower(user)
	}
	return strings.ToLower(user) + "@" + s.Domain
}

// IMAPURL returns the URL of user's INBOX on Dovecot,
// imap://user%40domain:password@host:port/INBOX.
func (s *Server) IMAPURL(user string) string {
	u := url.URL{Scheme: "imap", User: url.UserPassword(s.Address(user), Password), Host: s.IMAPAddr, Path: "/INBOX"}
	return u.String()
}

// SMTPURL returns the URL of Postfix's SMTP listener, smtp://host:port.
func (s *Server) SMTPURL() string { return "smtp://" + s.SMTPAddr }

// AddUser creates the mailbox of user (a local part or an address of the
// domain) and returns its address. Dovecot reads the new user at once.
func (s *Server) AddUser(user string) string {
	s.t.Helper()
	if err := s.writeUsers([]string{user}); err != nil {
		s.t.Fatal(err)
	}
	return s.Address(user)
}

// Route makes Postfix relay mail for address (or, when it has no @, for the
// whole domain) to the SMTP server at hostport instead of delivering it to
// Dovecot, such as a broker that receives as an SMTP server.
func (s *Server) Route(address, hostport string) {
	s.t.Helper()
	s.mu.Lock()
	s.routes[strings.ToLower(address)] = hostport
	var b strings.Builder
	for k, v := range s.routes {
		host, port, _ := net.SplitHostPort(v)
		fmt.Fprintf(&b, "%s smtp:[%s]:%s\n", k, host, port)
	}
	s.mu.Unlock()
	if err := os.WriteFile(filepath.Join(s.Dir, "postfix", "transport"), []byte(b.String()), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if out, err := exec.Command(postfixBin, "-c", filepath.Join(s.Dir, "postfix"), "reload").CombinedOutput(); err != nil {
		s.t.Fatalf("mailtest: postfix reload: %v\n%s", err, out)
	}
}

func (s *Server) writeUsers(users []string) error {
	f, err := os.OpenFile(filepath.Join(s.Dir, "dovecot", "passwd"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, u := range users {
		addr := s.Address(u)
		home := filepath.Join(s.Dir, "mail", addr)
		if _, err := fmt.Fprintf(f, "%s:{PLAIN}%s:%d:%d::%s::\n", addr, Password, mailUID, mailGID, home); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) writeDovecotConfig() error {
	d := filepath.Join(s.Dir, "dovecot")
	imapHost, imapPort, _ := net.SplitHostPort(s.IMAPAddr)
	lmtpHost, lmtpPort, _ := net.SplitHostPort(s.LMTPAddr)
	conf := fmt.Sprintf(`# mailtest: one Dovecot for one test
instance_name = mailtest-%[1]s
base_dir = %[2]s/run
state_dir = %[2]s/state
log_path = %[2]s/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %%Lu
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = %[3]d
first_valid_gid = %[4]d
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
postmaster_address = postmaster@%[5]s
hostname = dovecot.mailtest.invalid
lmtp_save_to_detail_mailbox = no
passdb {
  driver = passwd-file
  args = %[2]s/passwd
}
userdb {
  driver = passwd-file
  args = %[2]s/passwd
}
service imap-login {
  inet_listener imap {
    address = %[6]s
    port = %[7]s
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = %[8]s
    port = %[9]s
  }
}
`, imapPort, d, mailUID, mailGID, s.Domain, imapHost, imapPort, lmtpHost, lmtpPort)
	return os.WriteFile(filepath.Join(d, "dovecot.conf"), []byte(conf), 0o644)
}

func (s *Server) writePostfixConfig() error {
	d := filepath.Join(s.Dir, "postfix")
	main := fmt.Sprintf(`# mailtest: one Postfix for one test
compatibility_level = 3.6
mail_owner = postfix
setgid_group = postdrop
queue_directory = %[1]s/spool
data_directory = %[1]s/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = postfix.mailtest.invalid
mydomain = mailtest.invalid
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
virtual_mailbox_domains = %[2]s
virtual_transport = lmtp:inet:%[3]s
transport_maps = texthash:%[1]s/transport
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_reject_unlisted_recipient = no
smtpd_reject_unlisted_sender = no
smtp_host_lookup = native
lmtp_host_lookup = native
smtp_dns_support_level = disabled
in_flow_delay = 0
biff = no
smtputf8_enable = no
delay_warning_time = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
`, d, s.Domain, s.LMTPAddr)
	master := fmt.Sprintf(`# mailtest: no chroot, one SMTP listener on loopback
%s inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`, s.SMTPAddr)
	if err := os.WriteFile(filepath.Join(d, "main.cf"), []byte(main), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "transport"), nil, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "master.cf"), []byte(master), 0o644)
}

// process is a server's running process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has ended
}

// run starts args[0] with its output appended to the file log, and waits
// until each of greetings (address, first-line prefix pairs) answers.
func run(log string, args []string, greetings ...string) (*process, error) {
	out, err := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	for i := 0; i+1 < len(greetings); i += 2 {
		if err := waitGreeting(greetings[i], greetings[i+1], p.done); err != nil {
			p.stop()
			return nil, err
		}
	}
	return p, nil
}

// stop ends the process and its children and waits for it.
func (p *process) stop() { stopProcess(p.cmd, p.done) }

// startDovecot starts Dovecot in the foreground and waits for its IMAP and
// LMTP greetings.
func (s *Server) startDovecot() error {
	p, err := run(filepath.Join(s.Dir, "dovecot", "stderr.log"),
		[]string{dovecotBin, "-F", "-c", filepath.Join(s.Dir, "dovecot", "dovecot.conf")},
		s.IMAPAddr, "* OK", s.LMTPAddr, "220")
	if err != nil {
		return fmt.Errorf("mailtest: starting dovecot: %w\n%s", err, s.logTail("dovecot"))
	}
	s.mu.Lock()
	s.dovecot = p
	s.mu.Unlock()
	return nil
}

// startPostfix starts Postfix's master in the foreground and waits for its
// SMTP greeting.
func (s *Server) startPostfix() error {
	conf := filepath.Join(s.Dir, "postfix")
	// postfix check makes the queue's directories; the master then runs in
	// the foreground as a child of the test, so that it dies with it.
	if out, err := exec.Command(postfixBin, "-c", conf, "check").CombinedOutput(); err != nil {
		return fmt.Errorf("mailtest: postfix check: %w\n%s%s", err, out, s.logTail("postfix"))
	}
	p, err := run(filepath.Join(conf, "stderr.log"), []string{postfixMaster, "-c", conf, "-d"}, s.SMTPAddr, "220")
	if err != nil {
		return fmt.Errorf("mailtest: starting postfix: %w\n%s", err, s.logTail("postfix"))
	}
	s.mu.Lock()
	s.postfix = p
	s.mu.Unlock()
	return nil
}

// StopDovecot stops Dovecot and waits until it has ended; mail that Postfix
// takes meanwhile waits in its queue.
func (s *Server) StopDovecot() {
	s.t.Helper()
	s.mu.Lock()
	p := s.dovecot
	s.dovecot = nil
	s.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// StartDovecot starts Dovecot again after StopDovecot, on the same ports and
// with the same mailboxes.
func (s *Server) StartDovecot() {
	s.t.Helper()
	if err := s.startDovecot(); err != nil {
		s.t.Fatal(err)
	}
}

// RestartDovecot stops Dovecot and starts it again, which ends every IMAP
// connection.
func (s *Server) RestartDovecot() {
	s.t.Helper()
	s.StopDovecot()
	s.StartDovecot()
}

// Flush asks Postfix to try the mail in its queue again now, as after
// RestartDovecot.
func (s *Server) Flush() {
	s.t.Helper()
	if out, err := exec.Command(postfixBin, "-c", filepath.Join(s.Dir, "postfix"), "flush").CombinedOutput(); err != nil {
		s.t.Logf("mailtest: postfix flush: %v\n%s", err, out)
	}
}

func (s *Server) stop() {
	s.mu.Lock()
	pf, dc := s.postfix, s.dovecot
	s.postfix, s.dovecot = nil, nil
	s.mu.Unlock()
	if pf != nil {
		pf.stop()
	}
	if dc != nil {
		dc.stop()
	}
}

// waitGreeting waits until a connection to addr reads a first line that
// starts with prefix, or done is closed.
func waitGreeting(addr, prefix string, done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("the server exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, prefix) {
				return nil
			}
			last = fmt.Errorf("greeting %q: %v", line, rerr)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no greeting on %s within %v: %w", addr, startTimeout, last)
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// logTail returns the end of the logs of server (dovecot or postfix).
func (s *Server) logTail(server string) string {
	var b strings.Builder
	names := map[string][]string{
		"dovecot": {"dovecot/dovecot.log", "dovecot/stderr.log"},
		"postfix": {"postfix/maillog", "postfix/stderr.log"},
	}[server]
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(s.Dir, name))
		if err != nil || len(data) == 0 {
			continue
		}
		if len(data) > 8<<10 {
			data = data[len(data)-8<<10:]
		}
		fmt.Fprintf(&b, "--- %s\n%s", name, data)
	}
	return b.String()
}

// Queued returns how many mails Postfix has queued with the envelope
// sender from (an address, or "" for the null sender of bounces), as its log
// tells so far.
func (s *Server) Queued(from string) int {
	data, _ := os.ReadFile(filepath.Join(s.Dir, "postfix", "maillog"))
	want := "from=<" + strings.ToLower(from) + ">,"
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, " postfix/qmgr[") && strings.Contains(strings.ToLower(line), want) && strings.Contains(line, "(queue active)") {
			n++
		}
	}
	return n
}

// Logs returns the end of both servers' logs, for a failing test's message.
func (s *Server) Logs() string { return s.logTail("postfix") + s.logTail("dovecot") }

func (s *Server) dumpLogs() { s.t.Log(s.Logs()) }
