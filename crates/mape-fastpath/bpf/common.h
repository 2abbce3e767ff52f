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

/* One's complement sum folded to 16 bits (RFC 1071). */
static __always_inline __u16 csum_fold16(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* The IPv4 header at `ip` changed in place by direct packet access (so before any helper
 * that may move the packet's data): the source (`which` 0) or destination (1) address
 * to `addr` unless `which` is 2, the TTL decremented when `dec` (RFC 1812 §5.3.1), the
 * header checksum updated incrementally, RFC 1624 eqn. 3 (HC' = ~(~HC + ~m + m') for
 * each changed 16-bit word, summed as the words lie in the packet: one's complement
 * sums do not depend on the byte order). No helper: nothing here can fail. */
static __always_inline void ip4_rewrite(struct iphdr *ip, int which, __be32 addr, int dec)
{
	__u32 s = (__u16)~ip->check;
	if (which == 0) {
		__u32 old = ip->saddr;
		s += (__u16)~(old & 0xffff) + (__u16)~(old >> 16) + (addr & 0xffff) + (addr >> 16);
		ip->saddr = addr;
	} else if (which == 1) {
		__u32 old = ip->daddr;
		s += (__u16)~(old & 0xffff) + (__u16)~(old >> 16) + (addr & 0xffff) + (addr >> 16);
		ip->daddr = addr;
	}
	if (dec) {
		__u16 *tp = (__u16 *)&ip->ttl; /* TTL and protocol: the header's fifth word */
		__u16 old = *tp;
		ip->ttl--;
		s += (__u16)~old + *tp;
	}
	ip->check = ~csum_fold16(s);
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

/* The TCP/UDP checksum of the IPv4 packet at `l3` after its address and port changed
 * (RFC 1624, by the kernel's helpers: they know how the skb holds the checksum, e.g.
 * only the pseudo-header's part for CHECKSUM_PARTIAL, and keep a zero UDP checksum zero,
 * RFC 768). Non-zero when a helper refused. */
static __always_inline int l4_csum_update(struct __sk_buff *skb, __u32 l3, __u8 proto,
					  __be32 old_addr, __be32 new_addr, __be16 old_port,
					  __be16 new_port)
{
	__u32 csum = l3 + IP4_LEN + l4_csum_off(proto);
	__u64 f = l4_csum_flags(proto);
	return bpf_l4_csum_replace(skb, csum, old_addr, new_addr, f | BPF_F_PSEUDO_HDR | 4) ||
	       bpf_l4_csum_replace(skb, csum, old_port, new_port, f | 2);
}

/* Sends the packet on, its data pointers taken afresh (`skb` after the last helper that
 * moved them): the ethertype written, and with a FIB answer (`redirect`) the MACs it gave
 * (direct packet access) and out of its interface; without one, on through the kernel's
 * own forwarding, which resolves the neighbour and decrements the TTL itself. Dropped
 * (the helper-refused-half-way drop) if the Ethernet header is not in the linear data. */
static __always_inline int send(struct __sk_buff *skb, const struct bpf_fib_lookup *fib,
				int redirect, __u16 ethertype)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end) {
		count(FP_DROP_HELPER, 1);
		return TC_ACT_SHOT;
	}
	eth->h_proto = bpf_htons(ethertype);
	if (!redirect)
		return TC_ACT_OK;
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	return bpf_redirect(fib->ifindex, 0);
}

/* Writes the outer IPv6 header `h6` after the Ethernet header by direct packet access,
 * once bpf_skb_adjust_room has made its room. Non-zero when it is not in the linear data. */
static __always_inline int store_outer(struct __sk_buff *skb, const struct ipv6hdr *h6)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	if (data + ETH_LEN + sizeof(*h6) > end)
		return -1;
	__builtin_memcpy(data + ETH_LEN, h6, sizeof(*h6));
	return 0;
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
