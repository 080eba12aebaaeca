package cloakroom

import "github.com/cloakroom/cloakroom/internal/ttlcache"

// tokenCache remembers verified access tokens so that a token seen again is
// answered without signature work. An entry is dropped at the token's exp
// and no longer trusted once a key the provider published disappears
// (epoch change).
type tokenCache struct {
	c *ttlcache.Cache[cachedClaims]
}

type cachedClaims struct {
	claims *Claims
	epoch  uint64
}

// entryOverhead approximates the memory of an entry beyond the token and
// payload bytes: the Claims struct (704 bytes with its size class), the
// cache entry and its map slot, and what the gateway keeps on the claims
// (its identity headers, about 200 bytes). The payload counts twice:
// Claims keep a copy of it, and the roles decoded from it on first use.
const entryOverhead = 1024

func newTokenCache(entries, bytes int) *tokenCache {
	return &tokenCache{c: ttlcache.New[cachedClaims](entries, bytes)}
}

func (t *tokenCache) get(token string, now int64, epoch uint64) *Claims {
	e, ok := t.c.Get(token, now)
	if !ok || e.epoch != epoch {
		return nil
	}
	return e.claims
}

func (t *tokenCache) put(token string, c *Claims, exp int64, epoch uint64, now int64) {
	t.c.Put(token, cachedClaims{claims: c, epoch: epoch}, exp, len(token)+2*len(c.raw)+entryOverhead, now)
}
