/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the CE and BR fast-path programs share: packet parsing with bounds the verifier
 * can follow, the pass counters (every packet the fast path leaves to the slow path has
 * a reason), the RFC 1624 incremental checksum helpers and the outer IPv6 header.
 *
 * The fast path never drops: anything it cannot prove right goes on to the TUN, where
 * the engine decides (and counts a drop under its DropReason name if it must). */
#ifndef MAPE_COMMON_H
#define MAPE_COMMON_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "layout.h"

/* Debian's 6.1 UAPI headers predate it; the value is the running kernel's (BTF). */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif

#define ETH_LEN 14
#define IP4_LEN 20
#define IP6_LEN 40
/* IPv4 flags + fragment offset: MF set or a non-zero offset is a fragment. */
#define IP_MF_OFFSET 0x3fff

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_STATS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 what, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &what);
	if (c)
		*c += n;
}

/* Leaves the packet to the slow path, counted under `why` (an FP_PASS_* index). */
static __always_inline int pass(__u32 why)
{
	count(why, 1);
	return TC_ACT_OK;
}

/* Whether the program may act: the daemon renews the deadline every second; a daemon
 * that died (kill -9) leaves its programs attached, and they stop forwarding within
 * the deadline (FP_DEADLINE_NS) rather than forward without the engine. */
static __always_inline int alive(__u64 deadline_ns)
{
	return bpf_ktime_get_ns() < deadline_ns;
}

/* RFC 1071: the header checksum of a 20-byte IPv4 header verifies. */
static __always_inline int ip4_csum_ok(struct iphdr *ip)
{
	__u32 sum = 0;
	__u16 *w = (__u16 *)ip;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

/* The TCP/UDP checksum offset from the start of L4, and the flags for
 * bpf_l4_csum_replace: UDP keeps a zero (absent) checksum zero (RFC 768). */
static __always_inline int l4_csum_off(__u8 proto)
{
	return proto == IPPROTO_TCP ? 16 : 6;
}

static __always_inline __u64 l4_csum_flags(__u8 proto)
{
	return proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Length of the L4 header the fast path needs to see. */
static __always_inline int l4_min_len(__u8 proto)
{
	return proto == IPPROTO_TCP ? (int)sizeof(struct tcphdr) : (int)sizeof(struct udphdr);
}

/* The outer header of RFC 2473 / RFC 7597 §5: traffic class from the inner TOS, flow
 * label 0, next header 4. */
static __always_inline void outer_header(struct ipv6hdr *h, const __u8 src[16],
					 const __u8 dst[16], __u8 tos, __u16 payload,
					 __u8 hop_limit)
{
	h->version = 6;
	h->priority = tos >> 4;
	h->flow_lbl[0] = (tos & 0x0f) << 4;
	h->flow_lbl[1] = 0;
	h->flow_lbl[2] = 0;
	h->payload_len = bpf_htons(payload);
	h->nexthdr = IPPROTO_IPIP;
	h->hop_limit = hop_limit;
	__builtin_memcpy(&h->saddr, src, 16);
	__builtin_memcpy(&h->daddr, dst, 16);
}

static __always_inline int addr6_eq(const void *a, const void *b)
{
	const __u64 *x = a, *y = b;
	return x[0] == y[0] && x[1] == y[1];
}

/* Decrements the TTL of the IPv4 header at `off` (RFC 1812 §5.3.1), with the header
 * checksum updated incrementally (RFC 1624). */
static __always_inline int ttl_decrement(struct __sk_buff *skb, int off, __u8 ttl, __u8 proto)
{
	__be16 old = bpf_htons(((__u16)ttl << 8) | proto);
	__be16 new = bpf_htons(((__u16)(ttl - 1) << 8) | proto);
	__u8 t = ttl - 1;
	if (bpf_skb_store_bytes(skb, off + 8, &t, 1, 0))
		return -1;
	return bpf_l3_csum_replace(skb, off + 10, old, new, 2);
}

/* The IPv4 header at `off` when it is one the fast path handles: version 4 without
 * options, not a fragment, TCP or UDP with at least the UDP header's 8 bytes (both
 * ports) in the linear data, and a header checksum that verifies (RFC 1812 §5.2.2).
 * NULL otherwise. */
static __always_inline struct iphdr *flow_ip4(void *data, void *end, __u32 off)
{
	struct iphdr *ip = data + off;
	if ((void *)(ip + 1) > end)
		return NULL;
	if (ip->version != 4 || ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF_OFFSET)))
		return NULL;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return NULL;
	if ((void *)(ip + 1) + sizeof(struct udphdr) > end || !ip4_csum_ok(ip))
		return NULL;
	return ip;
}

/* The inner IPv4 header of a 4in6 frame for `ours` (RFC 2473, next header 4) when the
 * fast path may take it: the outer hop limit would not expire on the way into the TUN,
 * and the inner header passes flow_ip4. NULL otherwise, with the pass reason in `why`. */
static __always_inline struct iphdr *tunnel_ip4(void *data, void *end, const __u8 ours[16],
						__u32 *why)
{
	struct ethhdr *eth = data;
	struct ipv6hdr *h6 = data + ETH_LEN;
	*why = FP_PASS_NOT_FLOW;
	if ((void *)(h6 + 1) > end || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return NULL;
	if (h6->nexthdr != IPPROTO_IPIP || !addr6_eq(&h6->daddr, ours))
		return NULL;
	if (h6->hop_limit <= 1) {
		*why = FP_PASS_TTL;
		return NULL;
	}
	return flow_ip4(data, end, ETH_LEN + IP6_LEN);
}

/* NAT (RFC 1624 incremental checksums) of the IPv4 header at `l3`: the address at byte
 * `addr_at` of the header (12 source, 16 destination) and the port at byte `port_at` of
 * the L4 header (0 source, 2 destination), with the L4 checksum (pseudo-header, port)
 * and the header checksum. Non-zero when a helper refused. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, __u32 l3, __u8 proto,
				       __u32 addr_at, __be32 old_addr, __be32 new_addr,
				       __u32 port_at, __be16 old_port, __be16 new_port)
{
	__u32 l4 = l3 + IP4_LEN;
	__u32 csum = l4 + l4_csum_off(proto);
	__u64 f = l4_csum_flags(proto);
	return bpf_l4_csum_replace(skb, csum, old_addr, new_addr, f | BPF_F_PSEUDO_HDR | 4) ||
	       bpf_l4_csum_replace(skb, csum, old_port, new_port, f | 2) ||
	       bpf_l3_csum_replace(skb, l3 + 10, old_addr, new_addr, 4) ||
	       bpf_skb_store_bytes(skb, l3 + addr_at, &new_addr, 4, 0) ||
	       bpf_skb_store_bytes(skb, l4 + port_at, &new_port, 2, 0);
}

/* Sends the packet on: the ethertype written, and with a FIB answer (`redirect`) the
 * MACs it gave and out of its interface; without one, on through the kernel's own
 * forwarding, which resolves the neighbour and decrements the TTL itself. */
static __always_inline int send(struct __sk_buff *skb, const struct bpf_fib_lookup *fib,
				int redirect, __u16 ethertype)
{
	__be16 type = bpf_htons(ethertype);
	bpf_skb_store_bytes(skb, 12, &type, 2, 0);
	if (!redirect)
		return TC_ACT_OK;
	bpf_skb_store_bytes(skb, 0, fib->dmac, ETH_ALEN, 0);
	bpf_skb_store_bytes(skb, ETH_ALEN, fib->smac, ETH_ALEN, 0);
	return bpf_redirect(fib->ifindex, 0);
}

/* Segments and IPv4 bytes of a packet whose IPv4 header starts at `l3`: a GSO
 * super-packet counts as the segments it will become. */
static __always_inline void traffic(struct __sk_buff *skb, __u32 l3, __u32 hdrs, __u64 *pkts,
				    __u64 *bytes)
{
	__u32 len = skb->len - l3;
	__u32 segs = skb->gso_segs;
	if (skb->gso_size == 0 || segs <= 1) {
		*pkts = 1;
		*bytes = len;
		return;
	}
	*pkts = segs;
	*bytes = len + (__u64)(segs - 1) * hdrs;
}

#endif
