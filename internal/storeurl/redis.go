package storeurl

import (
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RedisMode says how a Redis URL reaches Redis.
type RedisMode string

// The ways to reach Redis.
const (
	// RedisSingle is one server (redis://, rediss://).
	RedisSingle RedisMode = "single"
	// RedisSentinel is a master found through Redis Sentinel
	// (redis+sentinel://, rediss+sentinel://).
	RedisSentinel RedisMode = "sentinel"
	// RedisCluster is a Redis Cluster (redis+cluster://, rediss+cluster://).
	RedisCluster RedisMode = "cluster"
)

// Default ports of the hosts of a Sentinel and a Cluster URL.
const (
	DefaultSentinelPort = "26379"
	DefaultRedisPort    = "6379"
)

// DefaultClusterPrefix is the key prefix of a Cluster URL without prefix=:
// its hash tag keeps every key of the store in one hash slot.
const DefaultClusterPrefix = "{cloakroom}:"

// DefaultWaitTimeout bounds the WAIT that follows a deletion (wait_timeout).
const DefaultWaitTimeout = time.Second

// RedisURL is a parsed Redis store URL (see ParseRedis).
type RedisURL struct {
	Mode RedisMode
	TLS  bool // rediss: schemes
	// ClientURL is, for RedisSingle, the URL for redis.ParseURL without the
	// parameters read here (prefix, min_replicas_ack, wait_timeout).
	ClientURL string
	// Addrs are host:port of the Sentinels (RedisSentinel) or of the
	// cluster's seed nodes (RedisCluster); empty for RedisSingle.
	Addrs []string
	// Username and Password authenticate to the Redis servers (the
	// user information of the URL); Sentinel and Cluster only.
	Username, Password string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// (sentinel_username=, sentinel_password=).
	SentinelUsername, SentinelPassword string
	// MasterName is the name the Sentinels monitor the master under.
	MasterName string
	// DB is the database number (Sentinel; always 0 for Cluster).
	DB int
	// Prefix is prefix= ("" when not given; a Cluster URL gets
	// DefaultClusterPrefix).
	Prefix string
	// MinReplicasAck is how many replicas must acknowledge a deletion
	// (min_replicas_ack=; default 1 for Sentinel and Cluster, 0 for one
	// server).
	MinReplicasAck int
	// WaitTimeout bounds the wait for them (wait_timeout=, default
	// DefaultWaitTimeout).
	WaitTimeout time.Duration
	// Options are the other query parameters: go-redis client options in
	// its own spelling (dial_timeout=3s, pool_size=20, …), checked by the
	// opener.
	Options neturl.Values
}

// ErrRedisURL is wrapped by every error of ParseRedis.
var ErrRedisURL = errors.New("the Redis URL is not valid")

// RedisForms lists the accepted Redis forms, for messages.
const RedisForms = "redis://[user:password@]host:port[/db], " +
	"redis+sentinel://[user:password@]sentinel1:26379[,sentinel2:26379…]/MASTERNAME[/db] or " +
	"redis+cluster://[user:password@]node1:6379[,node2:6379…] (rediss… for TLS)"

func isRedisScheme(s string) bool {
	for _, p := range []string{"redis://", "rediss://", "redis+sentinel://", "rediss+sentinel://", "redis+cluster://", "rediss+cluster://"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// ParseRedis reads a Redis store URL in one of the forms of the package
// documentation. Its errors wrap ErrRedisURL, say what to fix and never
// show a password.
func ParseRedis(s string) (RedisURL, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return RedisURL{}, redisErr(s, "want "+RedisForms)
	}
	var u RedisURL
	switch scheme {
	case "redis", "rediss":
		u.Mode = RedisSingle
	case "redis+sentinel", "rediss+sentinel":
		u.Mode = RedisSentinel
	case "redis+cluster", "rediss+cluster":
		u.Mode = RedisCluster
	default:
		return RedisURL{}, redisErr(s, "unknown scheme: want "+RedisForms)
	}
	u.TLS = strings.HasPrefix(scheme, "rediss")
	if strings.ContainsAny(s, " \t\r\n\x00\x7f") || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 }) {
		return RedisURL{}, redisErr(s, "it contains spaces or control characters (percent-encode them)")
	}
	if strings.Contains(rest, "#") {
		return RedisURL{}, redisErr(s, "a fragment (#…) has no meaning here; percent-encode a # in a password as %23")
	}
	// The user information ends at the last @ before the query, so that
	// a password may hold / or @ (better percent-encoded anyway).
	beforeQuery, rawQuery, _ := strings.Cut(rest, "?")
	q, err := neturl.ParseQuery(rawQuery)
	if err != nil {
		return RedisURL{}, redisErr(s, "the query (after ?) is not valid: percent-encode special characters")
	}
	var userinfo string
	if at := strings.LastIndex(beforeQuery, "@"); at >= 0 {
		userinfo, beforeQuery = beforeQuery[:at], beforeQuery[at+1:]
	}
	hostlist, path, _ := strings.Cut(beforeQuery, "/")

	// Parameters read here, for every form.
	if err := u.readCommon(s, q); err != nil {
		return RedisURL{}, err
	}
	if u.Mode == RedisSingle {
		if u.MinReplicasAck < 0 {
			u.MinReplicasAck = 0
		}
		base, _, _ := strings.Cut(rest, "?")
		u.ClientURL = scheme + "://" + base
		if len(q) > 0 {
			u.ClientURL += "?" + q.Encode()
		}
		return u, nil
	}
	if u.MinReplicasAck < 0 {
		u.MinReplicasAck = 1
	}

	if userinfo != "" {
		user, pass, hasPass := strings.Cut(userinfo, ":")
		if u.Username, err = neturl.PathUnescape(user); err != nil {
			return RedisURL{}, redisErr(s, "the user name is not valid percent-encoding")
		}
		if hasPass {
			if u.Password, err = neturl.PathUnescape(pass); err != nil {
				return RedisURL{}, redisErr(s, "the password is not valid percent-encoding")
			}
		}
	}

	defPort := DefaultRedisPort
	if u.Mode == RedisSentinel {
		defPort = DefaultSentinelPort
	}
	if hostlist == "" {
		return RedisURL{}, redisErr(s, "no host: list at least one, e.g. "+map[RedisMode]string{
			RedisSentinel: "redis+sentinel://sentinel1:26379,sentinel2:26379/mymaster",
			RedisCluster:  "redis+cluster://node1:6379,node2:6379",
		}[u.Mode])
	}
	hosts := strings.Split(hostlist, ",")
	hosts = append(hosts, q["addr"]...) // go-redis's spelling of more hosts
	delete(q, "addr")
	for i, h := range hosts {
		a, err := hostPort(h, defPort)
		if err != nil {
			return RedisURL{}, redisErr(s, fmt.Sprintf("host %d of %d: %v", i+1, len(hosts), err))
		}
		if !slices.Contains(u.Addrs, a) {
			u.Addrs = append(u.Addrs, a)
		}
	}

	segs := strings.Split(path, "/")
	if path == "" {
		segs = nil
	}
	switch u.Mode {
	case RedisSentinel:
		if len(segs) > 2 {
			return RedisURL{}, redisErr(s, "the path must be /MASTERNAME or /MASTERNAME/DB")
		}
		if len(segs) > 0 {
			if u.MasterName, err = neturl.PathUnescape(segs[0]); err != nil {
				return RedisURL{}, redisErr(s, "the master name is not valid percent-encoding")
			}
		}
		if m := q.Get("master_name"); m != "" { // go-redis's spelling
			if u.MasterName != "" && u.MasterName != m {
				return RedisURL{}, redisErr(s, fmt.Sprintf("the path names master %q but master_name= says %q: give one", u.MasterName, m))
			}
			u.MasterName = m
		}
		delete(q, "master_name")
		if u.MasterName == "" {
			return RedisURL{}, redisErr(s, "no master name: add the name the Sentinels monitor (sentinel monitor NAME …) as the path, e.g. redis+sentinel://sentinel1:26379/mymaster")
		}
		db := ""
		if len(segs) == 2 {
			db = segs[1]
		}
		if d := q.Get("db"); d != "" {
			if db != "" && db != d {
				return RedisURL{}, redisErr(s, "the path and db= name different databases: give one")
			}
			db = d
		}
		delete(q, "db")
		if db != "" {
			n, err := strconv.Atoi(db)
			if err != nil || n < 0 || n > 1<<20 {
				return RedisURL{}, redisErr(s, fmt.Sprintf("the database %q is not a number", db))
			}
			u.DB = n
		}
		u.SentinelUsername = q.Get("sentinel_username")
		u.SentinelPassword = q.Get("sentinel_password")
		delete(q, "sentinel_username")
		delete(q, "sentinel_password")
	case RedisCluster:
		if path != "" && path != "0" {
			return RedisURL{}, redisErr(s, "Redis Cluster has only database 0: drop the path")
		}
		if d := q.Get("db"); d != "" && d != "0" {
			return RedisURL{}, redisErr(s, "Redis Cluster has only database 0: drop db=")
		}
		delete(q, "db")
		for _, p := range []string{"master_name", "sentinel_username", "sentinel_password"} {
			if q.Has(p) {
				return RedisURL{}, redisErr(s, p+"= is for redis+sentinel:// URLs")
			}
		}
		if u.Prefix == "" {
			u.Prefix = DefaultClusterPrefix
		}
	}
	for _, p := range []string{"username", "password"} {
		if q.Has(p) {
			return RedisURL{}, redisErr(s, "put the Redis user and password before the hosts (redis+"+string(u.Mode)+"://user:PASSWORD@host…)"+
				map[RedisMode]string{RedisSentinel: "; the Sentinels' own take sentinel_username= and sentinel_password="}[u.Mode]+", not in "+p+"=")
		}
	}
	if u.Mode == RedisCluster && u.Prefix != "" {
		if _, ok := RedisHashTag(u.Prefix); !ok {
			return RedisURL{}, redisErr(s, fmt.Sprintf("prefix=%s has no hash tag: Redis Cluster needs every key of the store in one slot, so the prefix must contain {…}, e.g. prefix={myapp}:", u.Prefix))
		}
	}
	if len(q) > 0 {
		u.Options = q
	}
	return u, nil
}

// readCommon takes the parameters every form accepts out of q.
func (u *RedisURL) readCommon(s string, q neturl.Values) error {
	u.Prefix = q.Get("prefix")
	if q.Has("prefix") && u.Prefix == "" {
		return redisErr(s, "prefix= is empty: leave it out for the default")
	}
	u.MinReplicasAck = -1
	if v := q.Get("min_replicas_ack"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			return redisErr(s, fmt.Sprintf("min_replicas_ack=%s: want a number of replicas from 0 to 100", v))
		}
		u.MinReplicasAck = n
	}
	u.WaitTimeout = DefaultWaitTimeout
	if v := q.Get("wait_timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			if n, err2 := strconv.Atoi(v); err2 == nil {
				d, err = time.Duration(n)*time.Second, nil // go-redis: a plain number is seconds
			}
		}
		if err != nil || d < time.Millisecond || d > time.Hour {
			return redisErr(s, fmt.Sprintf("wait_timeout=%s: want a duration from 1ms to 1h, e.g. 500ms or 2s", v))
		}
		u.WaitTimeout = d
	}
	for _, p := range []string{"prefix", "min_replicas_ack", "wait_timeout"} {
		delete(q, p)
	}
	return nil
}

// hostPort checks one host[:port] of a host list.
func hostPort(h, defPort string) (string, error) {
	if h == "" {
		return "", errors.New("empty (a stray comma?)")
	}
	host, port := h, defPort
	switch {
	case strings.HasPrefix(h, "["):
		end := strings.Index(h, "]")
		if end < 0 {
			return "", errors.New("an IPv6 address opened with [ is not closed with ]")
		}
		host = h[1:end]
		switch tail := h[end+1:]; {
		case tail == "":
		case strings.HasPrefix(tail, ":"):
			port = tail[1:]
		default:
			return "", errors.New("after ] only :PORT may follow")
		}
		if net.ParseIP(host) == nil {
			return "", errors.New("the bracketed address is not an IPv6 address")
		}
	case strings.Count(h, ":") == 1:
		host, port, _ = strings.Cut(h, ":")
	case strings.Count(h, ":") > 1:
		return "", errors.New("an IPv6 address must be in brackets, e.g. [::1]:26379")
	}
	if host == "" {
		return "", errors.New("no host name before the port")
	}
	if !validHostName(host) {
		return "", errors.New("the host name has characters a host name cannot have")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "", errors.New("the port is not a number from 1 to 65535")
	}
	return net.JoinHostPort(host, port), nil
}

func validHostName(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}

// RedisHashTag returns the hash tag of a key prefix: the text between its
// first { and the next }, which Redis Cluster hashes instead of the whole
// key. ok is false when the prefix has none (or an empty one, {}), so that
// keys built from it would spread over many slots.
func RedisHashTag(prefix string) (tag string, ok bool) {
	i := strings.IndexByte(prefix, '{')
	if i < 0 {
		return "", false
	}
	j := strings.IndexByte(prefix[i+1:], '}')
	if j <= 0 {
		return "", false
	}
	return prefix[i+1 : i+1+j], true
}

func redisErr(s, msg string) error {
	return fmt.Errorf("%w: %s: %s", ErrRedisURL, Redact(s), msg)
}
