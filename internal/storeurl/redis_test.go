package storeurl

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseRedis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want RedisURL
	}{
		{"single", "redis://h:6379/0", RedisURL{Mode: RedisSingle, ClientURL: "redis://h:6379/0", WaitTimeout: time.Second}},
		{"single with our parameters", "rediss://u:p@h/2?prefix=app:&min_replicas_ack=1&wait_timeout=250ms&dial_timeout=3s",
			RedisURL{Mode: RedisSingle, TLS: true, ClientURL: "rediss://u:p@h/2?dial_timeout=3s", Prefix: "app:", MinReplicasAck: 1, WaitTimeout: 250 * time.Millisecond}},
		{"sentinel", "redis+sentinel://s1:26379,s2:26380,s3/mymaster",
			RedisURL{Mode: RedisSentinel, Addrs: []string{"s1:26379", "s2:26380", "s3:26379"}, MasterName: "mymaster", MinReplicasAck: 1, WaitTimeout: time.Second}},
		{"sentinel full", "rediss+sentinel://app:p%40ss%2Fw@[::1]:26379,10.0.0.2/my%20master/3?sentinel_username=sen&sentinel_password=x&min_replicas_ack=2&wait_timeout=2&read_timeout=2s",
			RedisURL{Mode: RedisSentinel, TLS: true, Addrs: []string{"[::1]:26379", "10.0.0.2:26379"}, Username: "app", Password: "p@ss/w",
				SentinelUsername: "sen", SentinelPassword: "x", MasterName: "my master", DB: 3, MinReplicasAck: 2, WaitTimeout: 2 * time.Second,
				Options: map[string][]string{"read_timeout": {"2s"}}}},
		{"sentinel, go-redis spellings", "redis+sentinel://:pw@s1?master_name=m&addr=s2:1&db=4&min_replicas_ack=0",
			RedisURL{Mode: RedisSentinel, Addrs: []string{"s1:26379", "s2:1"}, Password: "pw", MasterName: "m", DB: 4, WaitTimeout: time.Second}},
		{"sentinel, unescaped @ and / in the password", "redis+sentinel://:a/b@c@s1/m",
			RedisURL{Mode: RedisSentinel, Addrs: []string{"s1:26379"}, Password: "a/b@c", MasterName: "m", MinReplicasAck: 1, WaitTimeout: time.Second}},
		{"cluster", "redis+cluster://n1:7000,n2:7001,n2:7001",
			RedisURL{Mode: RedisCluster, Addrs: []string{"n1:7000", "n2:7001"}, Prefix: DefaultClusterPrefix, MinReplicasAck: 1, WaitTimeout: time.Second}},
		{"cluster with prefix and db 0", "rediss+cluster://u:p@n1/0?prefix=%7Bapp%7D:s:&pool_size=5",
			RedisURL{Mode: RedisCluster, TLS: true, Addrs: []string{"n1:6379"}, Username: "u", Password: "p", Prefix: "{app}:s:", MinReplicasAck: 1, WaitTimeout: time.Second,
				Options: map[string][]string{"pool_size": {"5"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRedis(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Mode != tt.want.Mode || got.TLS != tt.want.TLS || got.ClientURL != tt.want.ClientURL || !slices.Equal(got.Addrs, tt.want.Addrs) ||
				got.Username != tt.want.Username || got.Password != tt.want.Password || got.SentinelUsername != tt.want.SentinelUsername ||
				got.SentinelPassword != tt.want.SentinelPassword || got.MasterName != tt.want.MasterName || got.DB != tt.want.DB ||
				got.Prefix != tt.want.Prefix || got.MinReplicasAck != tt.want.MinReplicasAck || got.WaitTimeout != tt.want.WaitTimeout ||
				got.Options.Encode() != tt.want.Options.Encode() {
				t.Errorf("ParseRedis(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
			if u, err := Parse(tt.in); err != nil || u.Kind != Redis || u.Target != tt.in || !u.Shared() {
				t.Errorf("Parse(%q) = %+v, %v", tt.in, u, err)
			}
		})
	}
}

func TestParseRedisErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string // in the message
	}{
		{"redis+sentinel://:hunter2@s1:26379", "no master name"},
		{"redis+sentinel://:hunter2@/m", "no host"},
		{"redis+cluster://:hunter2@", "no host"},
		{"redis+sentinel://:hunter2@s1,,s2/m", "host 2 of 3: empty"},
		{"redis+sentinel://:hunter2@s1:port/m", "host 1 of 1: the port is not a number"},
		{"redis+sentinel://:hunter2@s1:0/m", "port is not a number"},
		{"redis+sentinel://:hunter2@s1:65536/m", "port is not a number"},
		{"redis+sentinel://:hunter2@s1:+1/m", "port is not a number"},
		{"redis+sentinel://:hunter2@::1/m", "must be in brackets"},
		{"redis+sentinel://:hunter2@[::1/m", "not closed"},
		{"redis+sentinel://:hunter2@[nothost]:1/m", "not an IPv6 address"},
		{"redis+sentinel://:hunter2@[::1]x/m", "only :PORT"},
		{"redis+sentinel://:hunter2@:26379/m", "no host name"},
		{"redis+sentinel://:hunter2@s%31/m", "characters a host name cannot have"},
		{"redis+sentinel://:hunter2@s1/m/x", "is not a number"},
		{"redis+sentinel://:hunter2@s1/m/1/2", "/MASTERNAME or /MASTERNAME/DB"},
		{"redis+sentinel://:hunter2@s1/m/1?db=2", "different databases"},
		{"redis+sentinel://:hunter2@s1/m?master_name=n", "give one"},
		{"redis+sentinel://s1/m?password=hunter2", "user and password before the hosts"},
		{"redis+sentinel://s1/m?username=x", "sentinel_password="},
		{"redis+cluster://:hunter2@n1/1", "only database 0"},
		{"redis+cluster://:hunter2@n1?db=3", "only database 0"},
		{"redis+cluster://:hunter2@n1?sentinel_password=hunter2", "for redis+sentinel"},
		{"redis+cluster://:hunter2@n1?prefix=app:", "has no hash tag"},
		{"redis+cluster://:hunter2@n1?prefix={}:", "has no hash tag"},
		{"redis+cluster://:hunter2@n1?prefix={app:", "has no hash tag"},
		{"redis+cluster://:hunter2@n1?prefix=", "prefix= is empty"},
		{"redis+cluster://:hunter2@n1?min_replicas_ack=-1", "min_replicas_ack=-1"},
		{"redis+cluster://:hunter2@n1?min_replicas_ack=x", "min_replicas_ack=x"},
		{"redis+cluster://:hunter2@n1?wait_timeout=forever", "wait_timeout=forever"},
		{"redis+cluster://:hunter2@n1?wait_timeout=0", "wait_timeout=0"},
		{"redis+cluster://:hunter2@n1?a=%zz", "query"},
		{"redis+cluster://:hunter2@n1#frag", "fragment"},
		{"redis+cluster://:hun ter2@n1", "spaces or control"},
		{"redis+cluster://:hunter2@n1\x00", "spaces or control"},
		{"redis+cluster://:hunter2%zz@n1", "password is not valid"},
		{"redis+sentinel://:hunter2@s1/m%zz", "master name is not valid"},
		{"redis+sentinel://us%zz:hunter2@s1/m", "user name is not valid"},
		{"redis+cluster://:hunter2@" + strings.Repeat("a", 300), "characters a host name"},
		{"redis+clusters://:hunter2@n1", "unknown scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			_, err := ParseRedis(tt.in)
			if err == nil || !errors.Is(err, ErrRedisURL) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseRedis(%q) = %v, want an error saying %q", tt.in, err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hun ter2") {
				t.Fatalf("the error shows the password: %v", err)
			}
			if isRedisScheme(tt.in) {
				if _, err2 := Parse(tt.in); err2 == nil || err2.Error() != err.Error() {
					t.Fatalf("Parse(%q) = %v, want ParseRedis's error", tt.in, err2)
				}
			}
		})
	}
}

func TestRedactRedisForms(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"redis+sentinel://app:hunter2@s1:26379,s2/m?sentinel_password=hunter2&x=1": "redis+sentinel://…@s1:26379,s2/m?sentinel_password=…&x=1",
		"redis+cluster://:hunter2@n1,n2?prefix={a}:":                               "redis+cluster://…@n1,n2?prefix={a}:",
		"rediss+sentinel://:a/b@hunter2@s1/m":                                      "rediss+sentinel://…@s1/m",
		"redis+sentinel://s1/m?SENTINEL_PASSWORD=hunter2":                          "redis+sentinel://s1/m?SENTINEL_PASSWORD=…",
	}
	for in, want := range tests {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedisHashTag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefix, tag string
		ok          bool
	}{
		{"{cloakroom}:", "cloakroom", true},
		{"app:{s}:", "s", true},
		{"{a}{b}", "a", true},
		{"cloakroom:", "", false},
		{"{}:{a}", "", false}, // Redis hashes the whole key when the first {} is empty
		{"{open", "", false},
		{"}{", "", false},
	}
	for _, tt := range tests {
		if tag, ok := RedisHashTag(tt.prefix); tag != tt.tag || ok != tt.ok {
			t.Errorf("RedisHashTag(%q) = %q, %v; want %q, %v", tt.prefix, tag, ok, tt.tag, tt.ok)
		}
	}
}

// FuzzParseRedis: no input panics, an error never shows the password, and
// what parses has at least one valid address (Sentinel, Cluster).
func FuzzParseRedis(f *testing.F) {
	for _, s := range []string{
		"redis://h:6379/0", "redis+sentinel://s1:26379,s2/m/1?sentinel_password=x",
		"rediss+cluster://u:p@[::1]:7000,n2?prefix={a}:", "redis+sentinel://:a@b@s/m?master_name=m",
		"redis+cluster://n1?wait_timeout=1&min_replicas_ack=2&addr=n2:1", "redis+sentinel://[::1",
		"redis+cluster://:p%zz@n", "redis+sentinel://s/m?db=1&db=2",
	} {
		f.Add(s, "hunter2")
	}
	f.Fuzz(func(t *testing.T, s, secret string) {
		if len(secret) < 6 || strings.ContainsAny(secret, "@/?#%:[],") {
			secret = "hunter2"
		}
		for _, scheme := range []string{"redis+sentinel://", "redis+cluster://"} {
			in := s
			if !strings.Contains(s, "://") {
				in = scheme + "u:" + secret + "@" + s
			}
			u, err := ParseRedis(in)
			if err != nil {
				if !errors.Is(err, ErrRedisURL) {
					t.Fatalf("ParseRedis(%q): %v does not wrap ErrRedisURL", in, err)
				}
				if strings.Contains(in, "u:"+secret+"@") && !strings.Contains(s, secret) && strings.Contains(err.Error(), secret) {
					t.Fatalf("ParseRedis(%q): the error shows the password: %v", in, err)
				}
				continue
			}
			if u.Mode != RedisSingle && len(u.Addrs) == 0 {
				t.Fatalf("ParseRedis(%q) gave no address", in)
			}
			if u.Mode == RedisCluster {
				if _, ok := RedisHashTag(u.Prefix); !ok {
					t.Fatalf("ParseRedis(%q): cluster prefix %q without a hash tag", in, u.Prefix)
				}
			}
		}
	})
}
