/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The maps' keys and values: the ABI between the programs and src/layout.rs, which
 * mirrors every struct byte for byte (the loader checks the sizes against the object's
 * BTF). Addresses and ports are in network order as in the packet; times, counters and
 * MTUs in host order. */
#ifndef MAPE_LAYOUT_H
#define MAPE_LAYOUT_H

#include <linux/types.h>

/* Pass and traffic counters (per CPU): the names are FastPathCounter in layout.rs. */
enum {
	FP_OUT_PACKETS = 0,  /* LAN -> tunnel, forwarded here */
	FP_OUT_BYTES,
	FP_IN_PACKETS,       /* tunnel -> LAN, forwarded here */
	FP_IN_BYTES,
	FP_PASS_STALE,       /* the daemon's deadline passed (it died): slow path */
	FP_PASS_NOT_FLOW,    /* not IPv4/4in6 TCP or UDP, IP options, fragments, bad header */
	FP_PASS_CONTROL,     /* CE: TCP SYN or RST: the engine sees them itself */
	FP_PASS_NO_ENTRY,    /* no established session (new flows, storms) */
	FP_PASS_TTL,         /* the TTL would expire: the slow path answers */
	FP_PASS_MTU,         /* larger than the tunnel MTU: the slow path fragments/answers */
	FP_PASS_SOURCE,      /* outer source is not the flow's BR / the CE of the rule (RFC 7597 §8.1) */
	FP_PASS_HAIRPIN,     /* BR: between two CEs of the domain */
	FP_PASS_HELPER,      /* a kernel helper refused before anything changed (none runs first now: 0) */
	FP_DROP_HELPER,      /* a kernel helper refused half-way: dropped (the only drop) */
	FP_PASS_EVENTS_FULL, /* CE: a FIN whose event the full ring cannot take: slow path */
	FP_FIN_EVENTS,       /* CE: FINs forwarded here, each told to the engine (ce_events) */
	FP_PASS_UNANSWERED,  /* CE: a flow armed at its SYN, not answered yet: only its SYN-ACK is ours */
	FP_SYN_ACK_EVENTS,   /* CE: SYN-ACKs forwarded here, each told to the engine (ce_events) */
	FP_STATS
};

/* CE, LAN -> tunnel: keyed like the engine's outbound index (proto, internal, remote). */
struct ce_out_key {
	__be32 src;   /* LAN host */
	__be32 dst;   /* remote */
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct ce_out_val {
	__u8 peer[16];   /* outer destination: the BR, or a CE by FMR */
	__be32 ext_addr;
	__be16 ext_port;
	__u8 pending;    /* 1: armed at the SYN, no answer yet: the LAN side is the engine's */
	__u8 pad0;
	__be32 lan_ack;  /* last ACK number the LAN host sent (TCP; valid when ack_seen) */
	__u32 ack_seen;
	__u64 last_seen; /* bpf_ktime_get_ns of the last packet either way */
	__u64 packets;
	__u64 bytes;
};

/* CE, tunnel -> LAN: keyed like the engine's inbound index (proto, external port, remote). */
struct ce_in_key {
	__be32 remote;
	__be16 rport;
	__be16 ext_port;
	__u8 proto;
	__u8 pad[3];
};

struct ce_in_val {
	__u8 peer[16];   /* the outer source this flow's packets must come from */
	__be32 lan_addr;
	__be16 lan_port;
	__u8 pending;    /* 1: armed at the SYN: only a SYN-ACK passes here (then both clear) */
	__u8 pad0;
	__u64 last_seen;
	__u64 packets;
	__u64 bytes;
};

/* CE: a TCP FIN of an installed flow, or the SYN-ACK of an armed one, forwarded here
 * (ce_events ring). The engine's state machine must see every FIN (RFC 9293 §3.6 close,
 * RFC 7857 §3.2 timers) and the answer that establishes a connection: the program
 * tells it in order through the ring instead of through the TUN, and leaves the packet
 * to the slow path when the ring is full. Flow fields as in the keys. */
struct ce_event {
	__be32 internal;  /* LAN host */
	__be32 remote;
	__be16 iport;
	__be16 rport;
	__be16 ext_port;
	__u8 flags;       /* the TCP header's flags byte (FIN 0x01 ... ACK 0x10) */
	__u8 outbound;    /* 1: LAN -> tunnel, 0: tunnel -> LAN */
	__be32 seq;
	__be32 ack;
};

struct ce_config {
	__u8 ce_addr[16];   /* our MAP IPv6 address */
	__be32 ext_addr;    /* our shared IPv4 address */
	__u32 ipv4_mtu;     /* tunnel MTU for the inner packet */
	__u64 deadline_ns;  /* forward only before this (the daemon renews it) */
	__u8 hop_limit;     /* outer hop limit as the originating router writes it */
	__u8 pad0;
	__u16 mss_in;       /* the largest MSS a SYN-ACK toward the LAN may carry (0: no clamp) */
	__u8 pad[4];
};

/* BR: one MAP rule, found by the longest match of an IPv4 address. */
struct br_rule_key {
	__u32 prefixlen;
	__be32 addr;
};

struct br_rule {
	__be64 prefix6;     /* the rule IPv6 prefix (upper 64 bits) */
	__u8 prefix6_len;
	__u8 prefix4_len;
	__u8 ea_len;        /* ea_len >= 32 - prefix4_len and prefix6_len + ea_len <= 64 */
	__u8 psid_offset;
	__u8 psid_len;
	__u8 draft03;       /* interface-ID layout: 0 RFC 7597 §6, 1 draft-ietf-softwire-map-03 */
	__u8 pad[2];
};

struct br_config {
	__u8 br_addr[16];
	__u32 ipv6_mtu;     /* tunnel MTU for the outer packet */
	__u32 pad0;
	__u64 deadline_ns;
	__u8 hop_limit;
	__u8 pad[7];
};

#endif
