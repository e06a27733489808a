/*
 * Cross-check of the golden files (control/tests/golden/NAME.txt): the data of control/tests/golden.rs
 * printed with ipvsadm.c's printf formats (print_title, print_service_entry,
 * print_largenum, print_conn, list_timeout, list_all/list_service) and sorted
 * with libipvs's ipvs_cmp_services / ipvs_cmp_dests under glibc's qsort.
 * Written for rvs from those formats; not ipvsadm's code. rvs-only output
 * (FullNat, --fullnat, -P lines, -x/-y in rules) is printed as rvs prints it.
 *
 *   sh control/tests/golden/check-against-c.sh
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dest {
	const char *addr; unsigned port; const char *fwd; int weight;
	unsigned uth, lth, persist; unsigned long long st[5]; unsigned long long rt[5];
	unsigned active, inact;
};
struct svc {
	int proto; const char *addr; unsigned port; const char *sched;
	const char *sflags; unsigned persistent; const char *mask;
	const char *laddrs[2]; int nd; struct dest d[3];
	unsigned fwmark; /* a firewall-mark service (addr "0.0.0.0" or "::", port 0, proto TCP as ipvsadm's -f sets) */
};

static struct svc S[] = {
	{17, "10.0.0.1", 53, "wlc", NULL, 0, NULL, {NULL}, 2, {
		{"10.0.0.12", 53, "Masq", 1, 0, 0, 0, {7, 70, 70, 4900, 9100}, {0, 1, 1, 60, 120}, 0, 3},
		{"10.0.0.11", 53, "Masq", 2, 0, 0, 0, {12, 120, 119, 8400, 15470}, {1, 2, 2, 140, 260}, 0, 5}}},
	{6, "10.0.0.1", 443, "rr", NULL, 0, NULL, {"10.0.0.200"}, 0, {{0}}},
	{6, "192.168.146.100", 80, "sh", "sh-fallback,sh-port", 300, "255.255.255.0", {"10.0.0.200", "10.0.0.201"}, 3, {
		{"192.168.177.20", 80, "Route", 3, 0, 0, 2, {12, 3456, 2345, 234567, 98765432}, {1, 20, 18, 2000, 150000}, 5, 1},
		{"192.168.177.10", 8080, "Masq", 1, 100, 50, 0, {123456789ULL, 1234567890ULL, 99999999ULL, 123456789012ULL, 123456789012345ULL},
		 {4321, 65432, 54321, 987654321ULL, 5}, 0, 0},
		{"10.0.0.3", 80, "FullNat", 0, 2000, 0, 1, {100000000ULL, 0, 999999999ULL, 100000000000ULL, 100000000000000ULL},
		 {0, 0, 0, 100000000ULL, 0}, 1234567890U, 42}}},
	{6, "10.0.0.1", 80, "wrr", NULL, 600, NULL, {"10.0.0.200"}, 1, {
		{"10.0.0.2", 80, "FullNat", 65535, 4294967295U, 1, 4294967295U, {1, 5, 4, 300, 4000}, {0, 0, 0, 0, 0}, 4294967295U, 0}}},
};
/* IPv6 (*-v6.txt): an IPv4 service beside IPv6 ones, which libipvs sorts after it. */
static struct svc S6[] = {
	{6, "fd77::100", 80, "rr", NULL, 300, NULL, {"fd77::200"}, 3, {
		{"fd77::12", 80, "FullNat", 1, 0, 0, 0, {7, 70, 70, 4900, 9100}, {0, 1, 1, 60, 120}, 2, 3},
		{"2001:db8:ffff:ffff:ffff:ffff:ffff:fff1", 8080, "FullNat", 5, 0, 0, 0, {123456789ULL, 1234567890ULL, 99999999ULL, 123456789012ULL, 123456789012345ULL},
		 {1, 2, 2, 140, 260}, 0, 0},
		{"fd77::11", 80, "FullNat", 1, 0, 0, 0, {12, 120, 119, 8400, 15470}, {1, 2, 2, 140, 260}, 1, 5}}},
	{17, "fd77::100", 53, "wlc", NULL, 0, NULL, {NULL}, 1, {
		{"fd77::11", 53, "Masq", 1, 0, 0, 0, {1, 2, 3, 4, 5}, {0, 0, 0, 0, 0}, 0, 1}}},
	{6, "10.0.0.1", 80, "wrr", NULL, 0, NULL, {"10.0.0.200"}, 1, {
		{"10.0.0.2", 80, "FullNat", 1, 0, 0, 0, {1, 5, 4, 300, 4000}, {0, 0, 0, 0, 0}, 0, 0}}},
	{6, "2001:db8::1", 443, "sh", NULL, 0, NULL, {NULL}, 2, {
		{"2001:db8::a", 443, "Route", 1, 0, 0, 0, {0}, {0}, 0, 0},
		{"2001:db8::9", 443, "Route", 1, 0, 0, 0, {0}, {0}, 0, 0}}},
};
/* Firewall-mark services (*-fwmark.txt) beside a VIP service. */
static struct svc SF[] = {
	{6, "0.0.0.0", 0, "rr", NULL, 300, NULL, {"10.0.0.200"}, 1, {
		{"10.0.0.2", 0, "FullNat", 1, 0, 0, 3, {5, 50, 40, 3000, 123456789ULL}, {1, 10, 9, 800, 900}, 2, 1}}, .fwmark = 7},
	{6, "::", 0, "sh", NULL, 0, NULL, {NULL}, 1, {
		{"fd77::11", 0, "Route", 2, 0, 0, 0, {1, 2, 3, 4, 5}, {1, 10, 9, 800, 900}, 1, 0}}, .fwmark = 1},
	{6, "0.0.0.0", 0, "wlc", NULL, 600, "255.255.255.0", {NULL}, 2, {
		{"10.0.0.12", 0, "Masq", 1, 0, 0, 0, {7, 70, 70, 4900, 9100}, {1, 10, 9, 800, 900}, 0, 3},
		{"10.0.0.11", 8080, "Masq", 2, 0, 0, 1, {12, 120, 119, 8400, 15470}, {1, 10, 9, 800, 900}, 0, 5}}, .fwmark = 1},
	{6, "10.0.0.1", 80, "wrr", NULL, 0, NULL, {"10.0.0.200"}, 1, {
		{"10.0.0.2", 80, "FullNat", 1, 0, 0, 0, {1, 5, 4, 300, 4000}, {1, 10, 9, 800, 900}, 0, 0}}},
};
#define NS ((int)(sizeof(S) / sizeof(S[0])))
#define NSF ((int)(sizeof(SF) / sizeof(SF[0])))
#define NS6 ((int)(sizeof(S6) / sizeof(S6[0])))

enum { F_PLAIN, F_STATS, F_RATE, F_THR, F_PC, F_RULE };

static uint32_t ip(const char *a) { struct in_addr x; inet_aton(a, &x); return ntohl(x.s_addr); }

static int af(const char *a) { return strchr(a, ':') ? AF_INET6 : AF_INET; }

/* libipvs: r = ntohl(a) - ntohl(b) into an int (IPv6: s6_addr32[0..3]
 * until one differs); then the ports. */
static int cmp_ip(const char *x, const char *y)
{
	struct in6_addr a, b;
	int r = 0, i;
	if (af(x) == AF_INET) return ip(x) - ip(y);
	inet_pton(AF_INET6, x, &a);
	inet_pton(AF_INET6, y, &b);
	for (i = 0; !r && i < 4; i++) r = ntohl(a.s6_addr32[i]) - ntohl(b.s6_addr32[i]);
	return r;
}
static int cmp_svc(const void *x, const void *y)
{
	const struct svc *a = x, *b = y;
	int r = a->fwmark - b->fwmark; /* ipvs_cmp_services: the mark first (u32 - u32 into an int) */
	if (r) return r;
	r = af(a->addr) - af(b->addr);
	if (r) return r;
	r = a->proto - b->proto;
	if (r) return r;
	r = cmp_ip(a->addr, b->addr);
	if (r) return r;
	return (int)a->port - (int)b->port;
}
static int cmp_dest(const void *x, const void *y)
{
	const struct dest *a = x, *b = y;
	int r = cmp_ip(a->addr, b->addr);
	if (r) return r;
	return (int)a->port - (int)b->port;
}

/* addrport_to_anyname with FMT_NUMERIC: "a.b.c.d:port" or "[v6]:port". */
static void addrport(char *buf, size_t n, const char *addr, unsigned port)
{
	snprintf(buf, n, af(addr) == AF_INET6 ? "[%s]:%u" : "%s:%u", addr, port);
}

static void largenum(unsigned long long i, int exact)
{
	char t[32];
	size_t len;
	if (exact) {
		len = snprintf(t, 32, "%llu", i);
		printf("%*llu", len <= 8 ? 9 : (int)len + 1, i);
		return;
	}
	if (i < 100000000) printf("%9llu", i);
	else if (i < 1000000000) printf("%8lluK", i / 1000);
	else if (i < 100000000000ULL) printf("%8lluM", i / 1000000);
	else if (i < 100000000000000ULL) printf("%8lluG", i / 1000000000ULL);
	else printf("%8lluT", i / 1000000000000ULL);
}

static void title(int f)
{
	if (f == F_STATS)
		printf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes");
	else if (f == F_RATE)
		printf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS");
	else if (f == F_THR)
		printf("%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn");
	else if (f == F_PC)
		printf("%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn");
	else if (f != F_RULE)
		printf("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
}

static const char *fwd_switch(const char *fwd)
{
	if (!strcmp(fwd, "Masq")) return "-m";
	if (!strcmp(fwd, "Tunnel")) return "-i";
	if (!strcmp(fwd, "Route")) return "-g";
	return "--fullnat"; /* rvs */
}

static void entry(struct svc *se, int f, int exact, int sort)
{
	char name[128], vname[64], dname[64];
	unsigned long long t[5] = {0};
	int i, k;
	addrport(vname, sizeof vname, se->addr, se->port);
	if (se->fwmark) { /* print_service_entry's fwmark names */
		if (f == F_RULE)
			sprintf(name, af(se->addr) == AF_INET6 ? "-f %d -6" : "-f %d", se->fwmark);
		else
			sprintf(name, af(se->addr) == AF_INET6 ? "FWM  %d IPv6" : "FWM  %d", se->fwmark);
	} else if (f == F_RULE)
		sprintf(name, "%s %s", se->proto == 6 ? "-t" : "-u", vname);
	else {
		sprintf(name, "%s  %s", se->proto == 6 ? "TCP" : "UDP", vname);
		if (af(se->addr) != AF_INET6) name[33] = '\0';
	}
	for (i = 0; i < se->nd; i++)
		for (k = 0; k < 5; k++)
			t[k] += f == F_RATE ? se->d[i].rt[k] : se->d[i].st[k];
	if (f == F_RULE) {
		printf("-A %s -s %s", name, se->sched);
		if (se->sflags) printf(" -b %s", se->sflags);
		if (se->persistent) {
			printf(" -p %u", se->persistent);
			if (se->mask) printf(" -M %s", se->mask);
		}
		printf("\n");
		for (i = 0; i < 2 && se->laddrs[i]; i++) /* rvs: FULLNAT local addresses */
			printf("-P %s -z %s\n", name, se->laddrs[i]);
	} else if (f == F_STATS || f == F_RATE) {
		printf("%-33s", name);
		for (k = 0; k < 5; k++) largenum(t[k], exact);
		printf("\n");
	} else {
		printf("%s %s", name, se->sched);
		if (se->sflags) printf(" (%s)", se->sflags);
		if (se->persistent) {
			printf(" persistent %u", se->persistent);
			if (se->mask) printf(" mask %s", se->mask);
		}
		printf("\n");
	}
	if (sort) qsort(se->d, se->nd, sizeof(struct dest), cmp_dest);
	for (i = 0; i < se->nd; i++) {
		struct dest *e = &se->d[i];
		addrport(dname, sizeof dname, e->addr, e->port);
		if (f != F_RULE && af(se->addr) != AF_INET6) dname[28] = '\0';
		if (f == F_RULE) {
			printf("-a %s -r %s %s -w %d", name, dname, fwd_switch(e->fwd), e->weight);
			if (e->uth) printf(" -x %u", e->uth); /* rvs */
			if (e->lth) printf(" -y %u", e->lth); /* rvs */
			printf("\n");
		} else if (f == F_STATS) {
			printf("  -> %-28s", dname);
			for (k = 0; k < 5; k++) largenum(e->st[k], exact);
			printf("\n");
		} else if (f == F_RATE) {
			printf("  -> %-28s %8u %8u %8u", dname, (unsigned)e->rt[0], (unsigned)e->rt[1], (unsigned)e->rt[2]);
			largenum(e->rt[3], exact);
			largenum(e->rt[4], exact);
			printf("\n");
		} else if (f == F_THR)
			printf("  -> %-28s %-10u %-10u %-10u %-10u\n", dname, e->uth, e->lth, e->active, e->inact);
		else if (f == F_PC)
			printf("  -> %-28s %-9u %-11u %-10u %-10u\n", dname, e->weight, e->persist, e->active, e->inact);
		else
			printf("  -> %-28s %-7s %-6d %-10u %-10u\n", dname, e->fwd, e->weight, e->active, e->inact);
	}
}

static struct svc W[8];

static void list_set(const struct svc *set, int n, int f, int exact, int sort)
{
	int i;
	memcpy(W, set, n * sizeof(struct svc));
	if (f != F_RULE) printf("IP Virtual Server version %d.%d.%d (size=%d)\n", 1, 2, 1, 4096);
	if (sort) qsort(W, n, sizeof(struct svc), cmp_svc);
	title(f);
	for (i = 0; i < n; i++) entry(&W[i], f, exact, sort);
}

static void list_all(int f, int exact, int sort) { list_set(S, NS, f, exact, sort); }

/* list_service: no version line; the first service in listing order. */
static void list_one(int f)
{
	memcpy(W, S, sizeof S);
	qsort(W, NS, sizeof(struct svc), cmp_svc);
	title(f);
	entry(&W[0], f, 0, 1);
}

static void conn(const char *proto, unsigned expires, const char *state, const char *c, const char *v, const char *d)
{
	char exp[12];
	sprintf(exp, "%02d:%02d", expires / 60, expires % 60);
	printf("%-3s %-6s %-11s %-18s %-18s %s\n", proto, exp, state, c, v, d);
}

static void connections(void)
{
	printf("IPVS connection entries\n");
	printf("pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination");
	conn("TCP", 74, "TIME_WAIT", "192.168.146.1:55276", "192.168.146.100:80", "192.168.177.20:80");
	conn("TCP", 899, "ESTABLISHED", "203.0.113.254:65535", "192.168.146.100:80", "192.168.177.10:8080");
	conn("UDP", 300, "UDP", "10.1.2.3:5353", "10.0.0.1:53", "10.0.0.11:53");
	conn("TCP", 5999, "SYN_RECV", "1.2.3.4:1", "10.0.0.1:80", "10.0.0.2:80");
	conn("TCP", 2678400, "FIN_WAIT", "255.255.255.255:65535", "10.0.0.1:80", "10.0.0.2:80");
}

/* list_conn with FMT_PERSISTENTCONN: the pe header; print_conn's lines
 * without a persistence engine (n != 11) are the plain ones. */
static void connections_pc(void)
{
	printf("IPVS connection entries\n");
	printf("pro expire %-11s %-18s %-18s %-18s %-16s %s\n",
	       "state", "source", "virtual", "destination",
	       "pe name", "pe_data");
	conn("TCP", 74, "TIME_WAIT", "192.168.146.1:55276", "192.168.146.100:80", "192.168.177.20:80");
	conn("TCP", 899, "ESTABLISHED", "203.0.113.254:65535", "192.168.146.100:80", "192.168.177.10:8080");
	conn("UDP", 300, "UDP", "10.1.2.3:5353", "10.0.0.1:53", "10.0.0.11:53");
	conn("TCP", 5999, "SYN_RECV", "1.2.3.4:1", "10.0.0.1:80", "10.0.0.2:80");
	conn("TCP", 2678400, "FIN_WAIT", "255.255.255.255:65535", "10.0.0.1:80", "10.0.0.2:80");
}

/* A fwmark service's connections and template: /proc/net/ip_vs_conn names
 * the template's protocol "IP" (ip_vs_proto_name(IPPROTO_IP)), its address
 * the mark (htonl(fwmark)), no ports; print_conn prints it as such. */
static void connections_fwmark(void)
{
	printf("IPVS connection entries\n");
	printf("pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination");
	conn("TCP", 899, "ESTABLISHED", "10.1.2.3:40000", "10.0.0.110:443", "10.0.0.12:443");
	conn("UDP", 300, "UDP", "10.1.2.3:40001", "10.0.0.110:443", "10.0.0.12:443");
	conn("IP", 298, "NONE", "10.1.2.0:0", "0.0.0.1:0", "10.0.0.12:0");
}

static void connections_v6(void)
{
	printf("IPVS connection entries\n");
	printf("pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination");
	conn("TCP", 899, "ESTABLISHED", "[fd77::10]:40000", "[fd77::100]:80", "[fd77::11]:80");
	conn("UDP", 300, "UDP", "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[fd77::100]:53", "[fd77::11]:53");
	conn("TCP", 60, "SYN_RECV", "10.1.2.3:1", "10.0.0.1:80", "10.0.0.2:80");
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	if (!strcmp(what, "list.txt")) list_all(F_PLAIN, 0, 1);
	else if (!strcmp(what, "list-nosort.txt")) list_all(F_PLAIN, 0, 0);
	else if (!strcmp(what, "list-one.txt")) list_one(F_PLAIN);
	else if (!strcmp(what, "list-one-stats.txt")) list_one(F_STATS);
	else if (!strcmp(what, "connections.txt")) connections();
	else if (!strcmp(what, "connections-persistent-conn.txt")) connections_pc();
	else if (!strcmp(what, "stats.txt")) list_all(F_STATS, 0, 1);
	else if (!strcmp(what, "stats-exact.txt")) list_all(F_STATS, 1, 1);
	else if (!strcmp(what, "rate.txt")) list_all(F_RATE, 0, 1);
	else if (!strcmp(what, "rate-exact.txt")) list_all(F_RATE, 1, 1);
	else if (!strcmp(what, "thresholds.txt")) list_all(F_THR, 0, 1);
	else if (!strcmp(what, "persistent-conn.txt")) list_all(F_PC, 0, 1);
	else if (!strcmp(what, "list-v6.txt")) list_set(S6, NS6, F_PLAIN, 0, 1);
	else if (!strcmp(what, "list-v6-nosort.txt")) list_set(S6, NS6, F_PLAIN, 0, 0);
	else if (!strcmp(what, "stats-v6.txt")) list_set(S6, NS6, F_STATS, 0, 1);
	else if (!strcmp(what, "rate-v6.txt")) list_set(S6, NS6, F_RATE, 0, 1);
	else if (!strcmp(what, "persistent-conn-v6.txt")) list_set(S6, NS6, F_PC, 0, 1);
	else if (!strcmp(what, "save-v6.txt")) list_set(S6, NS6, F_RULE, 0, 1);
	else if (!strcmp(what, "connections-v6.txt")) connections_v6();
	else if (!strcmp(what, "timeout.txt")) printf("Timeout (tcp tcpfin udp): %d %d %d\n", 900, 120, 300);
	else if (!strcmp(what, "save.txt")) list_all(F_RULE, 0, 1);
	else if (!strcmp(what, "list-fwmark.txt")) list_set(SF, NSF, F_PLAIN, 0, 1);
	else if (!strcmp(what, "stats-fwmark.txt")) list_set(SF, NSF, F_STATS, 0, 1);
	else if (!strcmp(what, "rate-fwmark.txt")) list_set(SF, NSF, F_RATE, 0, 1);
	else if (!strcmp(what, "persistent-conn-fwmark.txt")) list_set(SF, NSF, F_PC, 0, 1);
	else if (!strcmp(what, "save-fwmark.txt")) list_set(SF, NSF, F_RULE, 0, 1);
	else if (!strcmp(what, "connections-fwmark.txt")) connections_fwmark();
	else { fprintf(stderr, "usage: %s GOLDEN-FILE-NAME\n", argv[0]); return 2; }
	return 0;
}
