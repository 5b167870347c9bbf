package server

import (
	"context"
	"errors"
	"io"

	"github.com/switchboard-rtc/switchboard/bench/loadgen"
)

func bench(ctx context.Context, args []string, stdout io.Writer) error {
	err := loadgen.Main(ctx, args, stdout)
	if errors.Is(err, loadgen.ErrRunErrors) {
		return failed{err}
	}
	return err
}
