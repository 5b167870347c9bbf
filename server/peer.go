package server

import (
	"context"
	"io"

	"github.com/switchboard-rtc/switchboard/clients/go/peercmd"
)

func peer(ctx context.Context, args []string, stdout io.Writer) error {
	return peercmd.Main(ctx, args, stdout)
}
