package email

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/switchboard-rtc/switchboard/broker"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns the files.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchboard test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestSMTPServerAuthAndSTARTTLS: with a user set, the broker's SMTP server
// takes mail only after AUTH, offered over STARTTLS.
func TestSMTPServerAuthAndSTARTTLS(t *testing.T) {
	cert, key := selfSigned(t)
	r := newRig(t, Options{Receive: ReceiveSMTP, SMTPListen: "127.0.0.1:0", SMTPUsername: "peers", SMTPPassword: "s3cret",
		SMTPTLSCert: cert, SMTPTLSKey: key}, broker.Options{})
	var se *smtp.SMTPError
	if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, "", `{"type":"join","room":"r"}`)); !errors.As(err, &se) || se.Code != 502 {
		t.Fatalf("mail without AUTH: %v", err)
	}
	c2, err := smtp.DialStartTLS(r.smtp, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c2.Close()
	if err := c2.Auth(sasl.NewPlainClient("", "peers", "wrong")); err == nil {
		t.Fatal("a wrong password was taken")
	}
	c3, err := smtp.DialStartTLS(r.smtp, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if err := c3.Auth(sasl.NewPlainClient("", "peers", "s3cret")); err != nil {
		t.Fatal(err)
	}
	if err := c3.SendMail(alice, []string{DefaultAddress}, bytes.NewReader(peerMail(alice, DefaultAddress, "", `{"type":"join","room":"r"}`))); err != nil {
		t.Fatal(err)
	}
	(&inbox{r: r, addr: alice}).nextOfType(t, "welcome")
}
