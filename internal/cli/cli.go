// Package cli parses the flags of the switchboard subcommands alike: -h
// prints the command's description and flags to standard output and is no
// error; a bad flag or a stray argument is one line naming the problem and
// where to look, with no usage dump above it.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ErrHelp is returned by Parse after -h printed the usage: the command
// exits 0 without running.
var ErrHelp = flag.ErrHelp

// NewFlagSet returns a flag set for `switchboard <name>`, whose usage is
// the line "Usage: switchboard <name> <synopsis>", the summary and the
// flags. extra, if not nil, writes more after the flags (environment
// variables, say).
func NewFlagSet(name, synopsis, summary string, extra func(w io.Writer)) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n", strings.TrimSpace("switchboard "+name+" "+synopsis), strings.TrimSpace(summary))
		fs.PrintDefaults()
		if extra != nil {
			fmt.Fprintln(w)
			extra(w)
		}
	}
	return fs
}

// Parse parses args into fs, which takes no positional arguments. On -h
// it prints the usage to stdout and returns ErrHelp; on a bad flag or a
// stray argument it returns a one-line error that says how to see the
// flags, having printed nothing.
func Parse(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	usage := fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return ErrHelp
	}
	hint := fmt.Sprintf("run 'switchboard %s -h' for its flags", fs.Name())
	if err != nil {
		return fmt.Errorf("%s: %v (%s)", fs.Name(), err, hint)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q: %s takes flags only (%s)", fs.Name(), fs.Arg(0), fs.Name(), hint)
	}
	return nil
}
