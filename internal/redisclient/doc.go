// Package redisclient is what the Redis transport (transports/redis) and the
// cluster's Redis backplane and store (cluster/redis) share: the options that
// name a Redis deployment and make its go-redis client, the prefix that key
// and channel names start with, a pub/sub subscription that outlives Redis
// outages, and the routing of go-redis's own log lines into slog.
package redisclient
