/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The CE's fast path for established flows (issue #13), two tc (cls_bpf,
 * direct-action) programs:
 *   ce_lan, on LAN ingress: IPv4 of an installed session -> source rewritten to the
 *     external endpoint (RFC 1624 incremental checksums), TTL decremented (RFC 1812
 *     §5.3.1), encapsulated in IPv6 toward the BR or a CE (RFC 7597 §5, RFC 2473);
 *   ce_wan, on WAN ingress: 4in6 of an installed session from its BR -> decapsulated,
 *     destination rewritten to the LAN endpoint, TTL decremented.
 * Then out by bpf_redirect after a FIB lookup; without a resolved neighbour the kernel
 * forwards the translated packet itself (it decrements then, so we do not).
 * A FIN of an installed flow is forwarded too, and told to the engine through the
 * ce_events ring (struct ce_event), so that a connection's close does not cost two or
 * three TUN round trips. A TCP flow the engine translated a SYN for is armed: its
 * entries exist but are pending, ce_lan leaves all of it to the engine, and ce_wan
 * forwards only its SYN-ACK (MSS clamped, told through the ring), which clears both
 * pending marks: the answer opens the fast path, so nothing unanswered leaves the
 * engine and the handshake's answer does not cross the TUN. SYN and RST always go to
 * the engine.
 * Everything else, and any doubt, goes on to the TUN (TC_ACT_OK, counted by reason). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ce_out_key);
	__type(value, struct ce_out_val);
} ce_out SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ce_in_key);
	__type(value, struct ce_in_val);
} ce_in SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ce_config);
} ce_config SEC(".maps");

/* 8192 events of 24 bytes (+ 8 of header): the daemon drains it before every TUN batch
 * and at every tick (at most 100 ms apart), far more often than 8192 FINs arrive. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} ce_events SEC(".maps");

/* The TCP fields of a packet the engine must hear of (a FIN, or on ce_wan a SYN-ACK),
 * read while the header is in bounds (scalars: the verifier refuses a pointer chosen
 * without a branch). */
struct fin_fields {
	__u8 flags; /* 0: nothing to tell */
	__be32 seq;
	__be32 ack;
};

static __always_inline void read_fin(struct tcphdr *th, struct fin_fields *f)
{
	if (th->fin || th->syn) {
		f->flags = ((__u8 *)th)[13];
		f->seq = th->seq;
		f->ack = th->ack_seq;
	}
}

/* Reserves and fills the event for a FIN or SYN-ACK (NULL: the ring is full). */
static __always_inline struct ce_event *fin_event(__be32 internal, __be16 iport, __be32 remote,
						  __be16 rport, __be16 ext_port,
						  const struct fin_fields *f, __u8 outbound)
{
	struct ce_event *ev = bpf_ringbuf_reserve(&ce_events, sizeof(*ev), 0);
	if (!ev)
		return NULL;
	ev->internal = internal;
	ev->remote = remote;
	ev->iport = iport;
	ev->rport = rport;
	ev->ext_port = ext_port;
	ev->flags = f->flags;
	ev->outbound = outbound;
	ev->seq = f->seq;
	ev->ack = f->ack;
	return ev;
}

/* Gives up the reserved event (if any) and drops a packet a helper refused to finish
 * once it had begun to change (neither the slow path nor the wire could use it). */
static __always_inline int drop_ev(struct ce_event *ev)
{
	if (ev)
		bpf_ringbuf_discard(ev, 0);
	count(FP_DROP_HELPER, 1);
	return TC_ACT_SHOT;
}

#define L3 ETH_LEN
#define IN_L3 (ETH_LEN + IP6_LEN)

/* RFC 9293 §3.2: the Maximum Segment Size option, kind 2, length 4. */
#define TCPOPT_MSS 2
#define TCPOLEN_MSS 4

/* Lowers the MSS option (the first option, value at byte 22 of the TCP header at `l4`)
 * from `old` to `new` with the checksum (RFC 1624). Non-zero when a helper refused. */
static __always_inline int mss_rewrite(struct __sk_buff *skb, __u32 l4, __u16 old, __u16 new)
{
	__be16 o = bpf_htons(old), n = bpf_htons(new);
	return bpf_l4_csum_replace(skb, l4 + 16, o, n, 2) ||
	       bpf_skb_store_bytes(skb, l4 + sizeof(struct tcphdr) + 2, &n, 2, 0);
}

SEC("tc")
int ce_lan(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct ce_config *cfg = bpf_map_lookup_elem(&ce_config, &zero);
	/* One clock read per packet: the deadline check and the entry's last packet. */
	__u64 now = bpf_ktime_get_ns();
	if (!cfg || now >= cfg->deadline_ns)
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
	void *l4 = (void *)(ip + 1);
	__u32 hdrs = IP4_LEN;
	__be32 ack = 0;
	int has_ack = 0;
	struct fin_fields fin = {};
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end)
			return pass(FP_PASS_NOT_FLOW);
		if (th->syn || th->rst)
			return pass(FP_PASS_CONTROL);
		read_fin(th, &fin);
		hdrs += th->doff * 4;
		has_ack = th->ack;
		ack = th->ack_seq;
	} else {
		hdrs += sizeof(struct udphdr);
	}
	if (ip->ttl <= 1)
		return pass(FP_PASS_TTL);
	struct udphdr *ports = l4;
	struct ce_out_key key = {
		.src = ip->saddr,
		.dst = ip->daddr,
		.sport = ports->source,
		.dport = ports->dest,
		.proto = proto,
	};
	struct ce_out_val *v = bpf_map_lookup_elem(&ce_out, &key);
	if (!v)
		return pass(FP_PASS_NO_ENTRY);
	if (v->pending)
		return pass(FP_PASS_UNANSWERED);
	__u32 ip_len = bpf_ntohs(ip->tot_len);
	if (ip_len < hdrs || L3 + ip_len > skb->len)
		return pass(FP_PASS_NOT_FLOW);
	/* The largest packet this becomes on the wire: a GSO super-packet is cut into
	 * segments of gso_size payload (BPF_F_ADJ_ROOM_FIXED_GSO keeps it). */
	__u32 seg = skb->gso_size ? hdrs + skb->gso_size : ip_len;
	if (seg > cfg->ipv4_mtu)
		return pass(FP_PASS_MTU);

	struct bpf_fib_lookup fib = {};
	fib.family = 10; /* AF_INET6 */
	fib.l4_protocol = IPPROTO_IPIP;
	fib.tot_len = seg + IP6_LEN;
	fib.ifindex = skb->ingress_ifindex;
	__builtin_memcpy(fib.ipv6_src, cfg->ce_addr, 16);
	__builtin_memcpy(fib.ipv6_dst, v->peer, 16);
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return pass(FP_PASS_MTU);
	int redirect = rc == BPF_FIB_LKUP_RET_SUCCESS;

	struct ce_event *ev = NULL;
	if (fin.flags) {
		ev = fin_event(ip->saddr, ports->source, ip->daddr, ports->dest, v->ext_port, &fin, 1);
		if (!ev)
			return pass(FP_PASS_EVENTS_FULL);
	}
	__u8 tos = ip->tos;
	__be32 old_addr = ip->saddr, new_addr = v->ext_addr;
	__be16 old_port = ports->source, new_port = v->ext_port;
	__u64 pkts, bytes;
	traffic(skb, L3, hdrs, &pkts, &bytes);

	/* The packet changes from here on: the header and port in place first (the pointers
	 * are still good), then the helpers; one refusing is a drop. */
	ports->source = new_port;
	ip4_rewrite(ip, 0, new_addr, 1);
	if (l4_csum_update(skb, L3, proto, old_addr, new_addr, old_port, new_port) ||
	    bpf_skb_adjust_room(skb, IP6_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 | BPF_F_ADJ_ROOM_FIXED_GSO))
		return drop_ev(ev);
	struct ipv6hdr h6;
	/* Forwarded by the kernel, the outer packet loses one hop like the slow path's. */
	outer_header(&h6, cfg->ce_addr, v->peer, tos, ip_len,
		     redirect ? cfg->hop_limit - 1 : cfg->hop_limit);
	if (store_outer(skb, &h6))
		return drop_ev(ev); /* room made, header not written: nothing sane to send */
	if (ev) {
		/* Read at the daemon's next batch or tick: no wake-up needed. */
		bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
		count(FP_FIN_EVENTS, 1);
	}
	v->last_seen = now;
	if (has_ack) {
		v->lan_ack = ack;
		v->ack_seen = 1;
	}
	__sync_fetch_and_add(&v->packets, pkts);
	__sync_fetch_and_add(&v->bytes, bytes);
	count(FP_OUT_PACKETS, pkts);
	count(FP_OUT_BYTES, bytes);
	return send(skb, &fib, redirect, ETH_P_IPV6);
}

SEC("tc")
int ce_wan(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct ce_config *cfg = bpf_map_lookup_elem(&ce_config, &zero);
	/* One clock read per packet: the deadline check and the entry's last packet. */
	__u64 now = bpf_ktime_get_ns();
	if (!cfg || now >= cfg->deadline_ns)
		return pass(FP_PASS_STALE);
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ipv6hdr *h6 = data + L3;
	__u32 why;
	struct iphdr *ip = tunnel_ip4(data, end, cfg->ce_addr, &why);
	if (!ip)
		return pass(why);
	if ((void *)(h6 + 1) > end || ip->daddr != cfg->ext_addr)
		return pass(FP_PASS_NOT_FLOW);
	__u8 proto = ip->protocol;
	void *l4 = (void *)(ip + 1);
	__u32 hdrs = IP4_LEN;
	struct fin_fields fin = {};
	int syn_ack = 0;
	__u16 mss = 0; /* a SYN-ACK's MSS option (the first option, as stacks send it) */
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end)
			return pass(FP_PASS_NOT_FLOW);
		/* A SYN-ACK is the answer to a SYN the engine translated; a bare SYN (a
		 * static forward, a simultaneous open) and any RST are the engine's. */
		if (th->rst || (th->syn && !th->ack))
			return pass(FP_PASS_CONTROL);
		syn_ack = th->syn;
		if (syn_ack && th->doff > 5) {
			__u8 *opt = (void *)(th + 1);
			if ((void *)(opt + 4) > end)
				return pass(FP_PASS_NOT_FLOW);
			/* Anywhere else the slow path finds and clamps it. */
			if (opt[0] != TCPOPT_MSS || opt[1] != TCPOLEN_MSS)
				return pass(FP_PASS_CONTROL);
			mss = ((__u16)opt[2] << 8) | opt[3];
		}
		read_fin(th, &fin);
		hdrs += th->doff * 4;
	} else {
		hdrs += sizeof(struct udphdr);
	}
	__u32 ip_len = bpf_ntohs(ip->tot_len);
	if (ip_len < hdrs || bpf_ntohs(h6->payload_len) != ip_len || IN_L3 + ip_len > skb->len)
		return pass(FP_PASS_NOT_FLOW);
	if (ip->ttl <= 1)
		return pass(FP_PASS_TTL);
	struct udphdr *ports = l4;
	struct ce_in_key key = {
		.remote = ip->saddr,
		.rport = ports->source,
		.ext_port = ports->dest,
		.proto = proto,
	};
	struct ce_in_val *v = bpf_map_lookup_elem(&ce_in, &key);
	if (!v)
		return pass(FP_PASS_NO_ENTRY);
	/* RFC 7597 §8.1 as the slow path applies it: the flow's packets come from the BR
	 * (or, by FMR, from the CE that owns the remote). */
	if (!addr6_eq(&h6->saddr, v->peer))
		return pass(FP_PASS_SOURCE);
	if (v->pending && !syn_ack)
		return pass(FP_PASS_UNANSWERED);
	/* A SYN-ACK opens the LAN side too: its entry is the same flow's. */
	struct ce_out_val *back = NULL;
	if (syn_ack) {
		struct ce_out_key ok = {
			.src = v->lan_addr,
			.dst = ip->saddr,
			.sport = v->lan_port,
			.dport = ports->source,
			.proto = proto,
		};
		back = bpf_map_lookup_elem(&ce_out, &ok);
		if (!back)
			return pass(FP_PASS_NO_ENTRY);
	}
	/* RFC 4459 §3.2, RFC 7597 §8.3: the LAN host's segments go back through the tunnel,
	 * so its peer's SYN-ACK is clamped to the tunnel MTU as the slow path does. */
	__u16 clamp = syn_ack && cfg->mss_in && mss > cfg->mss_in ? cfg->mss_in : 0;

	struct bpf_fib_lookup fib = {};
	fib.family = 2; /* AF_INET */
	fib.l4_protocol = proto;
	fib.tot_len = skb->gso_size ? 0 : ip_len;
	fib.ifindex = skb->ingress_ifindex;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = v->lan_addr;
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return pass(FP_PASS_MTU);
	int redirect = rc == BPF_FIB_LKUP_RET_SUCCESS;

	struct ce_event *ev = NULL;
	if (fin.flags) {
		ev = fin_event(v->lan_addr, v->lan_port, ip->saddr, ports->source, ports->dest, &fin, 0);
		if (!ev)
			return pass(FP_PASS_EVENTS_FULL);
	}
	__be32 old_addr = ip->daddr, new_addr = v->lan_addr;
	__be16 old_port = ports->dest, new_port = v->lan_port;
	__u64 pkts, bytes;
	traffic(skb, IN_L3, hdrs, &pkts, &bytes);

	/* As on ce_lan: in place first, then the helpers; one refusing is a drop (rewritten
	 * but still encapsulated, the slow path could not match it). */
	ports->dest = new_port;
	ip4_rewrite(ip, 1, new_addr, redirect);
	if ((clamp && mss_rewrite(skb, IN_L3 + IP4_LEN, mss, clamp)) ||
	    l4_csum_update(skb, IN_L3, proto, old_addr, new_addr, old_port, new_port) ||
	    bpf_skb_adjust_room(skb, -IP6_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_DECAP_L3_IPV4 | BPF_F_ADJ_ROOM_FIXED_GSO))
		return drop_ev(ev);
	if (ev) {
		bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
		count(syn_ack ? FP_SYN_ACK_EVENTS : FP_FIN_EVENTS, 1);
	}
	if (back) {
		/* Answered: the LAN host's ACK that follows, and the rest, are ours. */
		back->pending = 0;
		v->pending = 0;
	}
	v->last_seen = now;
	__sync_fetch_and_add(&v->packets, pkts);
	__sync_fetch_and_add(&v->bytes, bytes);
	count(FP_IN_PACKETS, pkts);
	count(FP_IN_BYTES, bytes);
	return send(skb, &fib, redirect, ETH_P_IP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
