/*
 * fanout: one publisher and N subscribers on a wsdaemon broadcast channel, in C so the
 * generator is not what limits the measurement. Part of wsdaemon's bench/ (see fanout.py).
 *
 *   fanout --pub-port P --sub-ports P1[,P2,...] --path /chat/bench --subs N
 *          [--size 64] [--window K] [--duration S] [--warmup S]   (size 32..4096)
 *
 * The subscribers connect round-robin to the --sub-ports (two daemons, or the one port of
 * two workers); the publisher connects to --pub-port. Each 64-byte text message carries its
 * sequence number and its send time (CLOCK_MONOTONIC, hex digits). The publisher keeps at
 * most --window messages that some subscriber has not received yet (closed loop): it goes
 * as fast as the daemon fans out, without an unbounded backlog. Before measuring, probes
 * are published until every subscriber got one (the subscriptions are in place everywhere).
 * Every message must reach every subscriber in order; a gap or reordering is an error.
 *
 * Output: one JSON line: deliveries/s (messages received by subscribers in the measured
 * window, per second), messages published per second, publish-to-receive latency p50/p99.
 * Build:  cc -O2 -o fanout fanout.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING 65536
#define HIST_BUCKETS (1u << 21) /* 1 us buckets up to ~2 s */
#define MAXPORTS 8

typedef struct {
    int fd, open, is_pub;
    uint8_t buf[16384];
    int blen;
    long long last_seq; /* last sequence received; -1 before the first */
} conn;

static int opt_pub_port, ports[MAXPORTS], nports, opt_subs = 1000, opt_size = 64, opt_window = 4;
static const char *opt_path = "/chat/bench";
static double opt_duration = 5, opt_warmup = 1;
static conn *conns;
static int nconns, epfd, opened;
static uint32_t *hist, *got;
static long long next_seq, completed_seq = -1, errors, m_deliveries, m_published, all_deliveries;
static double t0_measure = 1e300, t1_measure = 1e300, lat_max;
static char first_error[200];
static const uint8_t mask_key[4] = {0x11, 0x22, 0x33, 0x44};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void error_note(const char *what) {
    if (!errors) snprintf(first_error, sizeof first_error, "%s", what);
    errors++;
}

static void die(const char *what) {
    fprintf(stderr, "fanout: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void send_all(conn *c, const uint8_t *data, size_t len) {
    /* Small writes on a socket with room: a short write is treated as an error (not expected). */
    ssize_t w = write(c->fd, data, len);
    if (w != (ssize_t)len) error_note("short write");
}

#define MAX_SIZE 4096

static void send_frame(conn *c, int opcode, const uint8_t *payload, int len) {
    uint8_t frame[8 + MAX_SIZE];
    int head = 2;
    frame[0] = 0x80 | opcode;
    if (len < 126) {
        frame[1] = 0x80 | len;
    } else {
        frame[1] = 0x80 | 126;
        frame[2] = (uint8_t)(len >> 8);
        frame[3] = (uint8_t)len;
        head = 4;
    }
    memcpy(frame + head, mask_key, 4);
    for (int i = 0; i < len; i++) frame[head + 4 + i] = payload[i] ^ mask_key[i & 3];
    send_all(c, frame, head + 4 + len);
}

static void publish(double t) {
    char text[MAX_SIZE + 1];
    int n = snprintf(text, sizeof text, "%016llx%016llx", (unsigned long long)next_seq,
                     (unsigned long long)(t * 1e9));
    while (n < opt_size) text[n++] = '.';
    send_frame(&conns[0], 0x1, (uint8_t *)text, opt_size);
    got[next_seq % RING] = 0;
    next_seq++;
    if (t >= t0_measure && t < t1_measure) m_published++;
}

static void message(conn *c, const uint8_t *p, int len, double t) {
    if (c->is_pub) return;
    if (len != opt_size) {
        error_note("message of the wrong size");
        return;
    }
    char hex[17] = {0};
    memcpy(hex, p, 16);
    long long seq = strtoll(hex, NULL, 16);
    memcpy(hex, p + 16, 16);
    double sent = strtoull(hex, NULL, 16) * 1e-9;
    if (c->last_seq >= 0 && seq != c->last_seq + 1) error_note("a subscriber missed or reordered a message");
    c->last_seq = seq;
    all_deliveries++;
    if (t >= t0_measure && t < t1_measure) {
        m_deliveries++;
        double us = (t - sent) * 1e6;
        if (us > lat_max) lat_max = us;
        hist[us < HIST_BUCKETS - 1 ? (uint32_t)us : HIST_BUCKETS - 1]++;
    }
    if (++got[seq % RING] == (uint32_t)opt_subs)
        while (completed_seq + 1 < next_seq && got[(completed_seq + 1) % RING] >= (uint32_t)opt_subs) completed_seq++;
}

static void on_readable(conn *c, double t) {
    ssize_t r = read(c->fd, c->buf + c->blen, sizeof c->buf - c->blen);
    if (r <= 0) {
        if (r < 0 && errno == EAGAIN) return;
        error_note("a connection closed");
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        return;
    }
    c->blen += r;
    int off = 0;
    if (!c->open) {
        char *end = memmem(c->buf, c->blen, "\r\n\r\n", 4);
        if (!end) return;
        if (memcmp(c->buf, "HTTP/1.1 101", 12) != 0) error_note("upgrade refused");
        c->open = 1;
        opened++;
        off = (int)(end - (char *)c->buf) + 4;
    }
    while (c->blen - off >= 2) {
        int len = c->buf[off + 1] & 0x7f, op = c->buf[off] & 0x0f, head = 2;
        if (len == 126) {
            if (c->blen - off < 4) break;
            len = (c->buf[off + 2] << 8) | c->buf[off + 3];
            head = 4;
        } else if (len == 127) {
            error_note("a frame larger than 64 KiB");
            len = 0;
        }
        if (len > (int)sizeof c->buf - 4) {
            error_note("a frame larger than the read buffer");
            len = 0;
        }
        if (c->blen - off < head + len) break;
        if (op == 0x9) send_frame(c, 0xA, c->buf + off + head, len);
        else if (op == 0x1 || op == 0x2) message(c, c->buf + off + head, len, t);
        off += head + len;
    }
    memmove(c->buf, c->buf + off, c->blen - off);
    c->blen -= off;
}

static void open_conn(conn *c, int port, int is_pub) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    c->is_pub = is_pub;
    c->last_seq = -1;
    char request[512];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     opt_path, port);
    send_all(c, (uint8_t *)request, n);
    if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void poll_once(int timeout_ms) {
    struct epoll_event evs[512];
    int n = epoll_wait(epfd, evs, 512, timeout_ms);
    double t = now();
    for (int i = 0; i < n; i++) {
        conn *c = evs[i].data.ptr;
        if (c->fd >= 0) on_readable(c, t);
    }
}

static double percentile(double p) {
    uint64_t total = 0, seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) total += hist[i];
    if (!total) return 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= p * total) return i + 0.5;
    }
    return HIST_BUCKETS;
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--pub-port")) opt_pub_port = atoi(v);
        else if (!strcmp(a, "--sub-ports"))
            for (char *s = strdup(v), *tok = strtok(s, ","); tok && nports < MAXPORTS; tok = strtok(NULL, ","))
                ports[nports++] = atoi(tok);
        else if (!strcmp(a, "--path")) opt_path = v;
        else if (!strcmp(a, "--subs")) opt_subs = atoi(v);
        else if (!strcmp(a, "--size")) opt_size = atoi(v);
        else if (!strcmp(a, "--window")) opt_window = atoi(v);
        else if (!strcmp(a, "--duration")) opt_duration = atof(v);
        else if (!strcmp(a, "--warmup")) opt_warmup = atof(v);
        else {
            fprintf(stderr, "fanout: unknown option %s\n", a);
            return 2;
        }
    }
    if (!opt_pub_port || !nports || opt_size < 32 || opt_size > MAX_SIZE || opt_window < 1 || opt_window > RING / 2) {
        fprintf(stderr, "usage: fanout --pub-port P --sub-ports P1[,P2] [--path P] [--subs N] [--size 32-4096] "
                        "[--window K] [--duration S] [--warmup S]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    hist = calloc(HIST_BUCKETS, sizeof *hist);
    got = calloc(RING, sizeof *got);
    nconns = opt_subs + 1;
    conns = calloc(nconns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    open_conn(&conns[0], opt_pub_port, 1);
    for (int i = 1; i < nconns; i++) open_conn(&conns[i], ports[(i - 1) % nports], 0);
    double deadline = now() + 60;
    while (opened < nconns && now() < deadline) poll_once(50);
    /* probes until every subscriber got one: every subscription is in place */
    for (;;) {
        int ready = 1;
        for (int i = 1; i < nconns; i++)
            if (conns[i].last_seq < 0) ready = 0;
        if (ready || now() > deadline) break;
        publish(now());
        for (double until = now() + 0.1; now() < until;) poll_once(10);
    }
    for (double until = now() + 1; completed_seq + 1 < next_seq && now() < until;) poll_once(10);
    completed_seq = next_seq - 1; /* probes some subscribers missed are not waited for */
    for (int i = 1; i < nconns; i++) conns[i].last_seq = next_seq - 1;
    double start = now();
    t0_measure = start + opt_warmup;
    t1_measure = t0_measure + opt_duration;
    while (now() < t1_measure) {
        while (next_seq - 1 - completed_seq < opt_window) publish(now());
        poll_once(10);
    }
    printf("{\"subs\": %d, \"size\": %d, \"window\": %d, \"seconds\": %.3f, \"deliveries\": %lld, "
           "\"deliveries_per_s\": %.0f, \"published_per_s\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"max_us\": %.1f, \"open\": %d, \"errors\": %lld, \"first_error\": \"%s\"}\n",
           opt_subs, opt_size, opt_window, opt_duration, m_deliveries, m_deliveries / opt_duration,
           m_published / opt_duration, percentile(0.5), percentile(0.99), lat_max, opened, errors, first_error);
    return errors ? 1 : 0;
}
