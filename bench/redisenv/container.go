package redisenv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
)

// Container settings.
const (
	// ContainerImage is the image the container kind runs.
	ContainerImage = "redis:7"
	// dockerProbeTimeout bounds the check that a Docker engine answers, so
	// that the auto chain falls through quickly where none runs.
	dockerProbeTimeout = 3 * time.Second
	// containerStartTimeout bounds pulling and starting the container.
	containerStartTimeout = 3 * time.Minute
	// containerStopTimeout bounds the container's stop on Close.
	containerStopTimeout = 10 * time.Second
)

// dockerAvailable reports, within dockerProbeTimeout, whether a Docker
// engine answers (testcontainers' provider health check). It returns an
// error wrapping ErrUnavailable saying why not.
func dockerAvailable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dockerProbeTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// testcontainers panics in some set-ups without Docker; the
		// provider's construction takes no context, hence the goroutine.
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("%v", r)
			}
		}()
		p, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(tclog.NewNoopLogger()))
		if err != nil {
			done <- err
			return
		}
		done <- p.Health(ctx) // Health closes the provider
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("container: %w: no Docker engine answers (%s)", ErrUnavailable, oneLine(err.Error()))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("container: %w: no Docker engine answered within %s", ErrUnavailable, dockerProbeTimeout)
	}
}

// provideContainer starts ContainerImage through testcontainers (with
// persistence off and the DEBUG command enabled: the container is
// throw-away), checks it and terminates it on Close. testcontainers' reaper
// removes it should paybench die first.
func provideContainer(ctx context.Context, o Options) (*Server, error) {
	if err := dockerAvailable(ctx); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, containerStartTimeout)
	defer cancel()
	ctr, err := tcredis.Run(sctx, ContainerImage,
		testcontainers.WithLogger(tclog.NewNoopLogger()),
		testcontainers.WithCmd("redis-server", "--save", "", "--appendonly", "no", "--enable-debug-command", "yes"),
	)
	terminate := func() error {
		if err := testcontainers.TerminateContainer(ctr, testcontainers.StopTimeout(containerStopTimeout)); err != nil {
			return fmt.Errorf("container: terminate: %w", err)
		}
		return nil
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("container: %w", err), terminate())
	}
	raw, err := ctr.ConnectionString(sctx)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("container: %w", err), terminate())
	}
	ro, full, err := parseURL(raw, "")
	if err != nil {
		return nil, errors.Join(err, terminate())
	}
	s, err := connect(ctx, KindContainer, full, ro, o, terminate)
	if err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	return s, nil
}
