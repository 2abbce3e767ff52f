/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The BR's fast path (issue #13): the BR is stateless, so every TCP and UDP packet of
 * a plain rule can take it. Two tc (cls_bpf, direct-action) programs:
 *   br_v6 (from the domain): 4in6 to the BR address whose outer source is the CE
 *     address the inner source address and port map to (RFC 7597 §8.1, the rule found
 *     by the longest match of the inner source in an LPM trie) -> decapsulated, TTL
 *     decremented, out to the internet;
 *   br_v4 (from the internet): IPv4 to an address of a rule -> encapsulated toward
 *     the CE that owns the destination address and port (RFC 7597 §5.3, §8).
 * br_ingress runs either by ethertype; the daemon attaches it at ingress of every
 * Ethernet interface. Hairpins between CEs, ICMP, fragments, options, reserved ports and anything not
 * proven right go on to the TUN (TC_ACT_OK, counted by reason). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct br_rule_key);
	__type(value, struct br_rule);
} br_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct br_config);
} br_config SEC(".maps");

#define L3 ETH_LEN
#define IN_L3 (ETH_LEN + IP6_LEN)

/* The MAP address of the CE that owns (addr, port) under rule r (RFC 7597 §5.3, §6):
 * rule prefix | EA bits (IPv4 suffix, PSID) | subnet 0 | interface ID. Returns 0 when
 * the port is one no CE owns (the first 2^(16-a) ports, §5.1). */
static __always_inline int ce_address(const struct br_rule *r, __be32 addr, __be16 port,
				      __u64 out[2])
{
	__u32 v4 = bpf_ntohl(addr);
	__u32 p = bpf_ntohs(port);
	__u32 a = r->psid_offset & 15, k = r->psid_len & 15;
	__u32 sfx_len = (32 - (r->prefix4_len & 31)) & 31;
	if (a > 0 && (p >> (16 - a)) == 0)
		return 0;
	if (a + k > 16)
		return 0;
	__u64 psid = k ? (p >> (16 - a - k)) & ((1u << k) - 1) : 0;
	__u64 suffix = v4 & ((1ull << sfx_len) - 1);
	__u64 ea = (suffix << k) | psid;
	__u32 shift = (64 - r->prefix6_len - r->ea_len) & 63;
	__u64 hi = bpf_be64_to_cpu(r->prefix6) | (r->ea_len ? ea << shift : 0);
	__u64 iid = r->draft03 ? ((__u64)v4 << 24) | (psid << 8) : ((__u64)v4 << 16) | psid;
	out[0] = bpf_cpu_to_be64(hi);
	out[1] = bpf_cpu_to_be64(iid);
	return 1;
}

static __always_inline const struct br_rule *rule_of(__be32 addr)
{
	struct br_rule_key k = { .prefixlen = 32, .addr = addr };
	return bpf_map_lookup_elem(&br_rules, &k);
}

/* Destinations the slow path refuses or treats specially (0/8, 127/8, multicast,
 * reserved, broadcast): never forwarded here. */
static __always_inline int unicast(__be32 addr)
{
	__u32 a = bpf_ntohl(addr);
	__u32 top = a >> 24;
	return top != 0 && top != 127 && top < 224;
}

static __always_inline int from_domain(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct br_config *cfg = bpf_map_lookup_elem(&br_config, &zero);
	if (!cfg || !alive(cfg->deadline_ns))
		return pass(FP_PASS_STALE);
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ipv6hdr *h6 = data + L3;
	__u32 why;
	struct iphdr *ip = tunnel_ip4(data, end, cfg->br_addr, &why);
	if (!ip)
		return pass(why);
	if ((void *)(h6 + 1) > end)
		return pass(FP_PASS_NOT_FLOW);
	__u8 proto = ip->protocol;
	struct udphdr *ports = (void *)(ip + 1);
	__u32 ip_len = bpf_ntohs(ip->tot_len);
	if (bpf_ntohs(h6->payload_len) != ip_len || IN_L3 + ip_len > skb->len)
		return pass(FP_PASS_NOT_FLOW);
	if (!unicast(ip->daddr))
		return pass(FP_PASS_NOT_FLOW);
	if (rule_of(ip->daddr))
		return pass(FP_PASS_HAIRPIN);
	if (ip->ttl <= 1)
		return pass(FP_PASS_TTL);
	const struct br_rule *r = rule_of(ip->saddr);
	__u64 want[2];
	if (!r || !ce_address(r, ip->saddr, ports->source, want) || !addr6_eq(&h6->saddr, want))
		return pass(FP_PASS_SOURCE);
	__u32 hdrs = IP4_LEN + (proto == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr));

	struct bpf_fib_lookup fib = {};
	fib.family = 2; /* AF_INET */
	fib.l4_protocol = proto;
	fib.tot_len = skb->gso_size ? 0 : ip_len;
	fib.ifindex = skb->ingress_ifindex;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return pass(FP_PASS_MTU);
	int redirect = rc == BPF_FIB_LKUP_RET_SUCCESS;
	__u64 pkts, bytes;
	traffic(skb, IN_L3, hdrs, &pkts, &bytes);
	if (redirect)
		ip4_rewrite(ip, 2, 0, 1); /* in place, before the helper moves the data */
	if (bpf_skb_adjust_room(skb, -IP6_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_DECAP_L3_IPV4 | BPF_F_ADJ_ROOM_FIXED_GSO)) {
		count(FP_DROP_HELPER, 1);
		return TC_ACT_SHOT;
	}
	count(FP_OUT_PACKETS, pkts);
	count(FP_OUT_BYTES, bytes);
	return send(skb, &fib, redirect, ETH_P_IP);
}

static __always_inline int from_internet(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct br_config *cfg = bpf_map_lookup_elem(&br_config, &zero);
	if (!cfg || !alive(cfg->deadline_ns))
		return pass(FP_PASS_STALE);
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return pass(FP_PASS_NOT_FLOW);
	struct iphdr *ip = flow_ip4(data, end, L3);
	if (!ip)
		return pass(FP_PASS_NOT_FLOW);
	__u8 proto = ip->protocol;
	struct udphdr *ports = (void *)(ip + 1);
	const struct br_rule *r = rule_of(ip->daddr);
	if (!r)
		return pass(FP_PASS_NOT_FLOW);
	__u32 hdrs = IP4_LEN;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = (void *)ports;
		if ((void *)(th + 1) > end)
			return pass(FP_PASS_NOT_FLOW);
		hdrs += th->doff * 4;
	} else {
		hdrs += sizeof(struct udphdr);
	}
	__u32 ip_len = bpf_ntohs(ip->tot_len);
	if (ip_len < hdrs || L3 + ip_len > skb->len)
		return pass(FP_PASS_NOT_FLOW);
	if (ip->ttl <= 1)
		return pass(FP_PASS_TTL);
	__u64 ce[2];
	if (!ce_address(r, ip->daddr, ports->dest, ce))
		return pass(FP_PASS_NO_ENTRY);
	__u32 seg = skb->gso_size ? hdrs + skb->gso_size : ip_len;
	if (seg + IP6_LEN > cfg->ipv6_mtu)
		return pass(FP_PASS_MTU);

	struct bpf_fib_lookup fib = {};
	fib.family = 10; /* AF_INET6 */
	fib.l4_protocol = IPPROTO_IPIP;
	fib.tot_len = seg + IP6_LEN;
	fib.ifindex = skb->ingress_ifindex;
	__builtin_memcpy(fib.ipv6_src, cfg->br_addr, 16);
	__builtin_memcpy(fib.ipv6_dst, ce, 16);
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return pass(FP_PASS_MTU);
	int redirect = rc == BPF_FIB_LKUP_RET_SUCCESS;
	__u8 tos = ip->tos;
	__u64 pkts, bytes;
	traffic(skb, L3, hdrs, &pkts, &bytes);
	ip4_rewrite(ip, 2, 0, 1); /* in place, before the helper moves the data */
	if (bpf_skb_adjust_room(skb, IP6_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 | BPF_F_ADJ_ROOM_FIXED_GSO)) {
		count(FP_DROP_HELPER, 1);
		return TC_ACT_SHOT;
	}
	struct ipv6hdr h6;
	outer_header(&h6, cfg->br_addr, (const __u8 *)ce, tos, ip_len,
		     redirect ? cfg->hop_limit - 1 : cfg->hop_limit);
	if (store_outer(skb, &h6)) {
		count(FP_DROP_HELPER, 1);
		return TC_ACT_SHOT;
	}
	count(FP_IN_PACKETS, pkts);
	count(FP_IN_BYTES, bytes);
	return send(skb, &fib, redirect, ETH_P_IPV6);
}

/* The domain side: 4in6 from CEs. */
SEC("tc")
int br_v6(struct __sk_buff *skb)
{
	return from_domain(skb);
}

/* The internet side: IPv4 to the domain's addresses. */
SEC("tc")
int br_v4(struct __sk_buff *skb)
{
	return from_internet(skb);
}

/* Either side on one interface (what the daemon attaches): by ethertype. */
SEC("tc")
int br_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return pass(FP_PASS_NOT_FLOW);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return from_domain(skb);
	return from_internet(skb);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
