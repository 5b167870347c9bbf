// Command report turns the JSON lines of bench/compare.sh into a Markdown
// section: a table per workload with each server's median over the rounds,
// then the targets Switchboard is held to, each met or missed and by how
// much.
//
//	go run ./bench/report bench/results/latest.jsonl
//	go run ./bench/report -doc docs/benchmarks.md bench/results/latest.jsonl
//
// With -doc it writes the section into that file between the markers
// <!-- compare:begin --> and <!-- compare:end -->, leaving the rest of the
// file as it is (and creating the file, or the markers, when absent);
// otherwise it prints the section.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	doc := flag.String("doc", "", "write the section into this Markdown `file` between the compare markers instead of printing it")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "Usage: report [-doc file.md] results.jsonl")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *doc); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(path, doc string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := Parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	data.Source = path
	if data.Meta == nil {
		data.Meta = hostMeta(path)
	}
	section := Render(data)
	if doc == "" {
		_, err := os.Stdout.WriteString(section)
		return err
	}
	old, err := os.ReadFile(doc)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(doc, []byte(Splice(string(old), section)), 0o644)
}

// hostMeta describes this machine, for results that carry no meta line of
// their own.
func hostMeta(path string) *Meta {
	return &Meta{
		Date:    time.Now().UTC().Format(time.RFC3339) + " (report time; the results carry no date)",
		NProc:   nproc(),
		CPU:     cpuModel(),
		Command: "go run ./bench/report " + path,
	}
}
