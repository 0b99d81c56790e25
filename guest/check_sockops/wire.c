/* check_sockops' capture: every TCP data segment on lo, in the driver's network namespace, with
 * the options it carries (what the kernel really sent, whatever the programs' counters say). */
#include "driver.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>

int wire_open(void)
{
	struct sockaddr_ll where = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
				     .sll_ifindex = if_nametoindex("lo") };
	int fd = must_socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));

	if (bind(fd, (void *)&where, sizeof(where)))
		fail("binding the capture to lo");
	return fd;
}

static void count_option(struct wire_side *side, unsigned int key)
{
	for (int i = 0; i < side->nr_keys; i++)
		if (side->keys[i] == key) {
			side->counts[i]++;
			return;
		}
	if (side->nr_keys < MAX_OPTION_KEYS) {
		side->keys[side->nr_keys] = key;
		side->counts[side->nr_keys++] = 1;
	}
}

static void segment(const unsigned char *p, int len, struct wire *out)
{
	const struct iphdr *ip = (const void *)(p + ETH_HLEN);
	const unsigned char *tcp, *opt, *end;
	struct wire_side *side;
	int ihl, doff, payload;

	if (len < ETH_HLEN + (int)sizeof(*ip) || ip->protocol != IPPROTO_TCP)
		return;
	ihl = ip->ihl * 4;
	tcp = p + ETH_HLEN + ihl;
	if (tcp + 20 > p + len)
		return;
	doff = (tcp[12] >> 4) * 4;
	payload = ntohs(ip->tot_len) - ihl - doff;
	if (payload <= 0 || tcp + doff > p + len)
		return;         /* handshake and pure ACKs vary with timing: data segments are what is sent */
	if (ntohs(*(const unsigned short *)(tcp + 2)) == SERVER_PORT)
		side = &out->to_server;
	else if (ntohs(*(const unsigned short *)tcp) == SERVER_PORT)
		side = &out->to_client;
	else
		return;
	side->data++;
	for (opt = tcp + 20, end = tcp + doff; opt < end && *opt != 0;) {
		if (*opt == 1) {
			opt++;
			continue;
		}
		if (opt + 1 >= end || opt[1] < 2 || opt + opt[1] > end)
			break;
		count_option(side, (unsigned int)opt[0] << 16 |
			     ((opt[0] == 253 || opt[0] == 254) && opt[1] >= 4 ? opt[2] << 8 | opt[3] : 0));
		opt += opt[1];
	}
}

void wire_read(int fd, struct wire *out)
{
	unsigned char buf[4096];
	struct sockaddr_ll from;
	socklen_t len = sizeof(from);
	int n;

	memset(out, 0, sizeof(*out));
	while ((n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (void *)&from, &len)) > 0) {
		if (from.sll_pkttype != PACKET_OUTGOING)    /* lo shows each packet leaving and arriving */
			segment(buf, n, out);
		len = sizeof(from);
	}
	close(fd);
}

static void print_side(const char *key, const struct wire_side *s)
{
	char name[32];

	json_obj_open(key);
	json_int("data", s->data);
	json_obj_open("options");
	for (int i = 0; i < s->nr_keys; i++) {
		unsigned int kind = s->keys[i] >> 16, exid = s->keys[i] & 0xffff;

		if (kind == 253 || kind == 254)
			snprintf(name, sizeof(name), "%u:0x%04x", kind, exid);
		else
			snprintf(name, sizeof(name), "%u", kind);
		json_int(name, s->counts[i]);
	}
	json_obj_close();
	json_obj_close();
}

void wire_print(const struct wire *w)
{
	json_obj_open("wire");
	print_side("to_server", &w->to_server);
	print_side("to_client", &w->to_client);
	json_obj_close();
}
