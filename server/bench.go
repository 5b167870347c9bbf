package server

import (
	"context"
	"io"

	"github.com/switchboard-rtc/switchboard/bench/loadgen"
)

func bench(ctx context.Context, args []string, stdout io.Writer) error {
	return loadgen.Main(ctx, args, stdout)
}
