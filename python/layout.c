/* layout.c — prints the size and field offsets of every public structure of include/prot.h, as
 * "struct NAME SIZE" and "field NAME.FIELD OFFSET" lines, for tests/python/test_layout.py to
 * compare with the ctypes mirror in python/prot/_abi.py. Not installed.
 */
#include <stddef.h>
#include <stdio.h>

#include "prot.h"

#define S(t) printf("struct %s %zu\n", #t, sizeof(struct t))
#define F(t, f) printf("field %s.%s %zu\n", #t, #f, offsetof(struct t, f))

int main(void)
{
	S(prot_info); F(prot_info, segment); F(prot_info, abi_version); F(prot_info, size);
	F(prot_info, config_generation); F(prot_info, protd_pid); F(prot_info, protd_alive);
	F(prot_info, heartbeat_age_ms); F(prot_info, retired); F(prot_info, keys); F(prot_info, max_keys);
	F(prot_info, breakers); F(prot_info, max_breakers); F(prot_info, pools); F(prot_info, max_pools);
	F(prot_info, rate_buckets_used); F(prot_info, rate_buckets_max);

	S(prot_rate_limit); F(prot_rate_limit, algo); F(prot_rate_limit, limit);
	F(prot_rate_limit, window_ms); F(prot_rate_limit, burst);

	S(prot_rate_info); F(prot_rate_info, allowed); F(prot_rate_info, limit); F(prot_rate_info, used);
	F(prot_rate_info, remaining); F(prot_rate_info, window_ms); F(prot_rate_info, reset_after_ms);
	F(prot_rate_info, retry_after_ms);

	S(prot_rate_status); F(prot_rate_status, exists); F(prot_rate_status, algo);
	F(prot_rate_status, info); F(prot_rate_status, expires_at_ms); F(prot_rate_status, created_ms);
	F(prot_rate_status, updated_ms);

	S(prot_breaker_opts); F(prot_breaker_opts, strategy); F(prot_breaker_opts, tolerance);
	F(prot_breaker_opts, window_ms); F(prot_breaker_opts, refresh_ms);
	F(prot_breaker_opts, half_open_probes); F(prot_breaker_opts, probe_timeout_ms);
	F(prot_breaker_opts, slow_call_ms); F(prot_breaker_opts, rate_threshold_pct);
	F(prot_breaker_opts, rate_window_calls); F(prot_breaker_opts, rate_min_calls);
	F(prot_breaker_opts, heal);

	S(prot_breaker_status); F(prot_breaker_status, name); F(prot_breaker_status, state);
	F(prot_breaker_status, failures_in_window); F(prot_breaker_status, next_probe_ms);
	F(prot_breaker_status, calls); F(prot_breaker_status, successes); F(prot_breaker_status, failures);
	F(prot_breaker_status, rejections); F(prot_breaker_status, last_transition_ms_ago);
	F(prot_breaker_status, opts); F(prot_breaker_status, probes_given_back);
	F(prot_breaker_status, admitted);

	S(prot_breaker_token); F(prot_breaker_token, opaque);
	S(prot_lease); F(prot_lease, opaque);

	S(prot_connector); F(prot_connector, create); F(prot_connector, destroy);
	F(prot_connector, check); F(prot_connector, ctx);

	S(prot_pool_status); F(prot_pool_status, name); F(prot_pool_status, size);
	F(prot_pool_status, max_overflow); F(prot_pool_status, in_use); F(prot_pool_status, overflow_in_use);
	F(prot_pool_status, waiting); F(prot_pool_status, checkout_timeout_ms);
	F(prot_pool_status, overflow_ttl_ms); F(prot_pool_status, strategy); F(prot_pool_status, checkouts);
	F(prot_pool_status, timeouts); F(prot_pool_status, reclaims); F(prot_pool_status, high_water);
	F(prot_pool_status, idle); F(prot_pool_status, state); F(prot_pool_status, min_idle);
	F(prot_pool_status, idle_timeout_ms); F(prot_pool_status, max_lifetime_ms);
	F(prot_pool_status, leak_threshold_ms); F(prot_pool_status, max_open); F(prot_pool_status, open);

	S(prot_call_opts); F(prot_call_opts, entity); F(prot_call_opts, operation); F(prot_call_opts, cost);
	F(prot_call_opts, timeout_ms); F(prot_call_opts, skip);

	S(prot_call); F(prot_call, conn); F(prot_call, deadline_ns); F(prot_call, arg); F(prot_call, key);

	S(prot_detail); F(prot_detail, layer); F(prot_detail, retry_after_ms); F(prot_detail, fn_result);
	F(prot_detail, key); F(prot_detail, message);

	S(prot_protection_status); F(prot_protection_status, key); F(prot_protection_status, has_rate);
	F(prot_protection_status, has_breaker); F(prot_protection_status, has_pool);
	F(prot_protection_status, rate); F(prot_protection_status, rate_buckets);
	F(prot_protection_status, rate_allowed); F(prot_protection_status, rate_denied);
	F(prot_protection_status, rate_table_full); F(prot_protection_status, breaker);
	F(prot_protection_status, pool); F(prot_protection_status, timeout_ms);
	F(prot_protection_status, calls); F(prot_protection_status, ok); F(prot_protection_status, failed);
	F(prot_protection_status, timeouts);
	return 0;
}
