/*
 * loadgen: a single-threaded epoll load generator for WebSocket echo servers
 * (and, in raw mode, for a framing-less TCP echo). Part of wsdaemon's bench/.
 *
 * Scenarios (--scenario):
 *   echo       --conns N connections, each keeping --inflight K messages of
 *              --size bytes outstanding (closed loop). Counts messages echoed
 *              back during --duration seconds after --warmup seconds, with a
 *              latency histogram (1 us buckets up to ~1 s).
 *   handshake  --conns N slots, each looping: connect, opening handshake,
 *              close handshake (client close 1000, wait for the server's
 *              close), close the socket. Raw mode: connect, 1-byte echo, close.
 *   idle       open --conns N connections (at most --concurrency at once),
 *              complete the handshake (raw: a 1-byte echo), print a "ready"
 *              JSON line, then hold them (answering pings) until a line or EOF
 *              arrives on stdin. Messages the server sends them (a broadcast)
 *              are checked against --size and counted, never answered.
 *
 * --tls speaks TLS (OpenSSL, no certificate check: the servers are ours, on
 * loopback) under either mode; every connection makes a full handshake (no
 * session resumption), so the handshake scenario counts TLS handshakes too.
 *
 * Client frames are masked (fixed, non-zero key: every frame is prebuilt once,
 * so masking costs the generator nothing). Server frames are parsed as a
 * stream (no per-connection message buffer), pings answered, echoes checked.
 *
 * Output: one JSON object per line on stdout.
 * Build:  cc -O2 -o loadgen loadgen.c -lssl -lcrypto   (Debian: libssl-dev)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum { MODE_WS, MODE_RAW };
enum { SC_ECHO, SC_HANDSHAKE, SC_IDLE };
enum { ST_FREE, ST_CONNECTING, ST_TLS, ST_HANDSHAKE, ST_OPEN, ST_CLOSING };
enum { PH_HEADER, PH_PAYLOAD };

#define HIST_BUCKETS (1u << 20) /* 1 us resolution up to ~1.05 s */
#define RBUF_SIZE (256 * 1024)
#define HBUF_SIZE 2048

/* ---------------------------------------------------------------- options */
static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static const char *opt_path = "/echo";
static int opt_mode = MODE_WS;
static int opt_scenario = SC_ECHO;
static int opt_conns = 1;
static int opt_inflight = 1;
static size_t opt_size = 64;
static int opt_binary = 0;
static double opt_duration = 5.0;
static double opt_warmup = 1.0;
static int opt_concurrency = 200;
static double opt_setup_timeout = 60.0;
static int opt_tls = 0;
static SSL_CTX *tls_ctx;

/* ---------------------------------------------------------------- state */
typedef struct conn {
    int fd;
    SSL *ssl;             /* --tls: the connection's TLS state */
    /* --tls: an SSL_write that wanted to write must be retried with the same bytes */
    size_t retry_len;
    int retry_x;          /* the retried bytes are control frames (xbuf), not sendbuf */
    int state;
    int want_out;         /* EPOLLOUT registered */
    double t_start;       /* handshake scenario: when this attempt began */
    /* opening handshake response */
    char *hbuf;
    int hlen;
    /* frame parser */
    int phase;
    uint8_t hdr[14];
    int hdr_have, hdr_need;
    uint8_t opcode;       /* opcode of the current frame */
    uint8_t msg_opcode;   /* opcode of the first frame of the current message */
    int fin;
    uint64_t pay_left;
    uint64_t msg_off;     /* payload bytes of the current message seen so far */
    uint8_t ctl[125];
    int ctl_len;
    /* raw mode: bytes of the current message received so far is msg_off */
    /* sending: q_frames identical frames from sendbuf, q_off into the first */
    uint64_t q_frames;
    size_t q_off;
    uint8_t xbuf[160];    /* pong / close frames */
    int xlen, xoff;
    /* latency FIFO of send times (capacity inflight) */
    double *ts;
    int ts_head, ts_count;
    int outstanding;
    int got_close;
    int sent_close;
    int counted;          /* counted in n_open */
} conn;

static conn *conns;
static int nconns;
static int epfd;
static uint8_t *rbuf;
static uint8_t *payload;      /* the expected echo payload (unmasked) */
static uint8_t *sendbuf;      /* K copies of the outgoing frame */
static size_t frame_len;      /* one outgoing frame */
static int sendbuf_frames;    /* K */
static char request[1024];
static int request_len;
static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};
static struct sockaddr_in addr;

static uint32_t *hist;
static uint64_t hist_over;
static double lat_max_us;
static uint64_t lat_count;

static int running = 1;       /* queue new messages / start new attempts */
static double t_measure0, t_measure1; /* measurement window */
static uint64_t m_msgs, m_bytes, all_msgs, m_handshakes, all_handshakes;
static uint64_t errors;
static char first_error[256];
static int n_open, n_failed, n_started;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void error_note(const char *fmt, ...) {
    errors++;
    if (first_error[0] == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(first_error, sizeof first_error, fmt, ap);
        va_end(ap);
        for (char *p = first_error; *p; p++)
            if (*p == '"' || *p == '\\' || (unsigned char)*p < 32) *p = ' ';
    }
}

static void record_latency(double seconds) {
    double us = seconds * 1e6;
    if (us < 0) us = 0;
    if (us > lat_max_us) lat_max_us = us;
    uint64_t b = (uint64_t)us;
    if (b >= HIST_BUCKETS) hist_over++;
    else hist[b]++;
    lat_count++;
}

static double percentile(double p) {
    if (lat_count == 0) return 0;
    uint64_t want = (uint64_t)(p * lat_count);
    if (want >= lat_count) want = lat_count - 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > want) return i + 0.5;
    }
    return lat_max_us;
}

static int in_window(double t) { return t >= t_measure0 && t < t_measure1; }

/* ---------------------------------------------------------------- epoll */
static void ep_set(conn *c, int want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl MOD: %s", strerror(errno));
    c->want_out = want_out;
}

static void conn_reset_parser(conn *c) {
    c->phase = PH_HEADER;
    c->hdr_have = 0;
    c->hdr_need = 2;
    c->pay_left = 0;
    c->msg_off = 0;
    c->ctl_len = 0;
}

static void conn_close(conn *c) {
    if (c->counted) {
        n_open--;
        c->counted = 0;
    }
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* one close_notify, not waiting for the server's */
        ERR_clear_error();
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    c->retry_len = 0;
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = ST_FREE;
    free(c->hbuf);
    c->hbuf = NULL;
    c->hlen = 0;
    c->q_frames = 0;
    c->q_off = 0;
    c->xlen = c->xoff = 0;
    c->ts_head = c->ts_count = 0;
    c->outstanding = 0;
    c->got_close = c->sent_close = 0;
    conn_reset_parser(c);
}

static void conn_fail(conn *c, const char *what) {
    if (opt_scenario == SC_IDLE && !c->counted) n_failed++;
    error_note("%s", what);
    conn_close(c);
}

static int conn_start(conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_note("socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->state = ST_CONNECTING;
    c->t_start = now();
    conn_reset_parser(c);
    n_started++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl ADD: %s", strerror(errno));
    c->want_out = 1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        char msg[128];
        snprintf(msg, sizeof msg, "connect: %s", strerror(errno));
        conn_fail(c, msg);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- TLS or not */
/* read(2) or SSL_read: -1 with errno EAGAIN when nothing can be read now, 0 at end of stream.
 * SSL_read gives one record at a time, so it is called until the buffer is full or it wants more. */
static ssize_t io_read(conn *c, uint8_t *buf, size_t len) {
    if (!c->ssl) return read(c->fd, buf, len);
    size_t got = 0;
    while (got < len) {
        int r = SSL_read(c->ssl, buf + got, (int)(len - got));
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (got) break;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (e == SSL_ERROR_WANT_WRITE && !c->want_out) ep_set(c, 1);
            errno = EAGAIN;
            return -1;
        }
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        if (e == SSL_ERROR_SYSCALL && r == 0) return 0; /* EOF without close_notify */
        errno = EPROTO;
        return -1;
    }
    return (ssize_t)got;
}

/* write(2) or SSL_write; -1 with errno EAGAIN when nothing can be written now.
 * After SSL_write wanted to write, the caller retries with the same bytes (flush does). */
static ssize_t io_write(conn *c, const uint8_t *buf, size_t len, int is_x) {
    if (!c->ssl) return write(c->fd, buf, len);
    int w = SSL_write(c->ssl, buf, (int)(len > (1u << 30) ? (1u << 30) : len));
    if (w > 0) {
        c->retry_len = 0;
        return w;
    }
    int e = SSL_get_error(c->ssl, w);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        c->retry_len = len;
        c->retry_x = is_x;
        errno = EAGAIN;
        return -1;
    }
    errno = EPIPE;
    return -1;
}

static void tls_setup(void) {
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx) die("SSL_CTX_new failed");
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

/* ---------------------------------------------------------------- sending */
static void queue_frames(conn *c, int n, double t) {
    for (int i = 0; i < n; i++) {
        int cap = opt_inflight;
        c->ts[(c->ts_head + c->ts_count) % cap] = t;
        c->ts_count++;
    }
    c->q_frames += n;
    c->outstanding += n;
}

static void queue_extra(conn *c, uint8_t opcode, const uint8_t *data, int len) {
    /* A masked control frame (len <= 125). */
    if (c->xlen + 6 + len > (int)sizeof c->xbuf) {
        error_note("control frame queue full");
        return;
    }
    uint8_t *p = c->xbuf + c->xlen;
    p[0] = 0x80 | opcode;
    p[1] = 0x80 | (uint8_t)len;
    memcpy(p + 2, mask_key, 4);
    for (int i = 0; i < len; i++) p[6 + i] = data[i] ^ mask_key[i & 3];
    c->xlen += 6 + len;
}

/* Returns -1 if the connection failed. */
static int flush(conn *c) {
    for (;;) {
        int x_first = c->xoff < c->xlen && c->q_off == 0;
        if (c->retry_len) x_first = c->retry_x; /* TLS: the same bytes as the write that wanted to write */
        if (x_first && c->xoff < c->xlen) {
            size_t len = c->retry_len ? c->retry_len : (size_t)(c->xlen - c->xoff);
            ssize_t w = io_write(c, c->xbuf + c->xoff, len, 1);
            if (w < 0) {
                if (errno == EAGAIN) break;
                conn_fail(c, "write failed");
                return -1;
            }
            c->xoff += w;
            if (c->xoff == c->xlen) c->xoff = c->xlen = 0;
            continue;
        }
        if (c->q_frames == 0) break;
        uint64_t n = c->q_frames < (uint64_t)sendbuf_frames ? c->q_frames : (uint64_t)sendbuf_frames;
        size_t len = n * frame_len - c->q_off;
        if (c->xoff < c->xlen) len = frame_len - c->q_off; /* stop at the frame boundary */
        if (c->retry_len) len = c->retry_len;
        ssize_t w = io_write(c, sendbuf + c->q_off, len, 0);
        if (w < 0) {
            if (errno == EAGAIN) break;
            conn_fail(c, "write failed");
            return -1;
        }
        size_t total = c->q_off + (size_t)w;
        c->q_frames -= total / frame_len;
        c->q_off = total % frame_len;
        if ((size_t)w < len && !c->ssl) break; /* a short write(2): the socket buffer is full */
    }
    int pending = c->q_frames > 0 || c->xoff < c->xlen;
    if (pending != c->want_out) ep_set(c, pending);
    return 0;
}

static void send_close(conn *c) {
    uint8_t code[2] = {0x03, 0xe8};
    if (opt_mode == MODE_WS) queue_extra(c, 0x8, code, 2);
    c->sent_close = 1;
    c->state = ST_CLOSING;
}

/* ---------------------------------------------------------------- receiving */
static void handshake_attempt_done(conn *c, double t) {
    all_handshakes++;
    if (in_window(t)) {
        m_handshakes++;
        record_latency(t - c->t_start);
    }
    conn_close(c);
    if (running && t < t_measure1) conn_start(c);
}

/* A whole echoed message arrived. */
static void message_done(conn *c, double t) {
    all_msgs++;
    if (c->ts_count > 0) {
        double sent = c->ts[c->ts_head];
        c->ts_head = (c->ts_head + 1) % opt_inflight;
        c->ts_count--;
        if (in_window(t)) {
            m_msgs++;
            m_bytes += opt_size;
            record_latency(t - sent);
        }
    }
    c->outstanding--;
    /* idle connections only listen (e.g. broadcast members): they never answer a message */
    if (opt_scenario != SC_IDLE && running && t < t_measure1) queue_frames(c, 1, t);
}

static void frame_done(conn *c, double t) {
    uint8_t op = c->opcode;
    if (op >= 0x8) {
        if (op == 0x9) {
            queue_extra(c, 0xA, c->ctl, c->ctl_len);
        } else if (op == 0x8) {
            c->got_close = 1;
        }
        c->ctl_len = 0;
        return;
    }
    if (!c->fin) return;
    if (c->msg_off != opt_size) {
        error_note("echo of %llu bytes, expected %zu", (unsigned long long)c->msg_off, opt_size);
    } else if (c->msg_opcode != (opt_binary ? 0x2 : 0x1)) {
        error_note("echo with opcode %d", c->msg_opcode);
    }
    c->msg_off = 0;
    message_done(c, t);
}

/* Parse server frames; returns -1 on a protocol error (connection closed). */
static int parse_ws(conn *c, const uint8_t *p, size_t n, double t) {
    while (n > 0) {
        if (c->phase == PH_HEADER) {
            while (n > 0 && c->hdr_have < c->hdr_need) {
                c->hdr[c->hdr_have++] = *p++;
                n--;
                if (c->hdr_have == 2) {
                    uint8_t l7 = c->hdr[1] & 0x7f;
                    c->hdr_need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((c->hdr[1] & 0x80) ? 4 : 0);
                }
            }
            if (c->hdr_have < c->hdr_need) return 0;
            if (c->hdr[1] & 0x80) {
                conn_fail(c, "server sent a masked frame");
                return -1;
            }
            c->fin = c->hdr[0] >> 7;
            c->opcode = c->hdr[0] & 0x0f;
            uint8_t l7 = c->hdr[1] & 0x7f;
            uint64_t len = l7;
            if (l7 == 126) len = ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
            else if (l7 == 127) {
                len = 0;
                for (int i = 2; i < 10; i++) len = (len << 8) | c->hdr[i];
            }
            if (c->opcode >= 0x8) {
                if (len > 125) {
                    conn_fail(c, "control frame too long");
                    return -1;
                }
            } else if (c->opcode != 0x0) {
                c->msg_opcode = c->opcode;
                c->msg_off = 0;
            }
            c->pay_left = len;
            c->phase = PH_PAYLOAD;
            c->hdr_have = 0;
            c->hdr_need = 2;
            if (len == 0) {
                c->phase = PH_HEADER;
                frame_done(c, t);
                if (c->fd < 0) return -1;
            }
            continue;
        }
        size_t m = n < c->pay_left ? n : (size_t)c->pay_left;
        if (c->opcode >= 0x8) {
            memcpy(c->ctl + c->ctl_len, p, m);
            c->ctl_len += m;
        } else {
            /* Check the echo: small messages whole, big ones by their first bytes. */
            if (c->msg_off + m <= opt_size) {
                size_t check = m;
                if (opt_size > 4096) check = c->msg_off < 64 ? (m < 64 - c->msg_off ? m : 64 - c->msg_off) : 0;
                if (check && memcmp(p, payload + c->msg_off, check) != 0) error_note("echo payload differs");
            }
            c->msg_off += m;
        }
        p += m;
        n -= m;
        c->pay_left -= m;
        if (c->pay_left == 0) {
            c->phase = PH_HEADER;
            frame_done(c, t);
            if (c->fd < 0) return -1;
        }
    }
    return 0;
}

static void parse_raw(conn *c, const uint8_t *p, size_t n, double t) {
    while (n > 0) {
        size_t m = opt_size - c->msg_off;
        if (m > n) m = n;
        if (opt_size <= 4096 && memcmp(p, payload + c->msg_off, m) != 0) error_note("echo payload differs");
        c->msg_off += m;
        p += m;
        n -= m;
        if (c->msg_off == opt_size) {
            c->msg_off = 0;
            message_done(c, t);
        }
    }
}

static void became_open(conn *c, double t) {
    c->state = ST_OPEN;
    n_open++;
    c->counted = 1;
    if (opt_scenario == SC_HANDSHAKE) {
        if (opt_mode == MODE_RAW) {
            handshake_attempt_done(c, t);
            return;
        }
        send_close(c);
        flush(c);
    }
}

/* Length of the HTTP response head (through the blank line), or 0 if incomplete. */
static size_t head_length(const char *b, int n) {
    for (int i = 3; i < n; i++)
        if (b[i] == '\n' && b[i - 1] == '\r' && b[i - 2] == '\n' && b[i - 3] == '\r') return (size_t)i + 1;
    return 0;
}

/* Our close was answered (close frame or EOF): the attempt or the connection ends. */
static void closing_ended(conn *c, double t) {
    if (opt_scenario == SC_HANDSHAKE) {
        handshake_attempt_done(c, t);
        return;
    }
    conn_close(c);
}

static void send_request(conn *c);
static void tls_continue(conn *c);

/* Handle readable data on c. */
static void on_readable(conn *c) {
    if (c->state == ST_TLS) {
        tls_continue(c);
        return;
    }
    ssize_t r = io_read(c, rbuf, RBUF_SIZE);
    double t = now();
    if (r < 0) {
        if (errno == EAGAIN) return;
        if (c->state == ST_CLOSING) {
            closing_ended(c, t);
            return;
        }
        char msg[128];
        snprintf(msg, sizeof msg, "read: %s (state %d)", strerror(errno), c->state);
        conn_fail(c, msg);
        return;
    }
    if (r == 0) {
        if (c->state == ST_CLOSING) {
            if (opt_mode == MODE_WS && !c->got_close) error_note("server closed TCP without a close frame");
            closing_ended(c, t);
            return;
        }
        char msg[128];
        snprintf(msg, sizeof msg, "server closed the connection (state %d)", c->state);
        conn_fail(c, msg);
        return;
    }
    const uint8_t *p = rbuf;
    size_t n = (size_t)r;
    if (c->state == ST_HANDSHAKE) {
        if (opt_mode == MODE_RAW) {
            /* the 1-byte echo that proves the server accepted us */
            became_open(c, t);
            return;
        }
        size_t room = HBUF_SIZE - 1 - c->hlen;
        size_t take = n < room ? n : room;
        memcpy(c->hbuf + c->hlen, p, take);
        c->hlen += take;
        c->hbuf[c->hlen] = 0;
        size_t head = head_length(c->hbuf, c->hlen);
        if (head == 0) {
            if (c->hlen >= HBUF_SIZE - 1) conn_fail(c, "handshake response too long");
            return;
        }
        if (strncmp(c->hbuf, "HTTP/1.1 101", 12) != 0) {
            char msg[128];
            char *eol = strstr(c->hbuf, "\r\n");
            if (eol) *eol = 0;
            snprintf(msg, sizeof msg, "handshake refused: %.80s", c->hbuf);
            conn_fail(c, msg);
            return;
        }
        size_t consumed = head - (c->hlen - take); /* bytes of this read that were head */
        free(c->hbuf);
        c->hbuf = NULL;
        c->hlen = 0;
        p += consumed;
        n -= consumed;
        became_open(c, t);
        if (c->fd < 0 || c->state == ST_FREE) return;
    }
    if (opt_mode == MODE_RAW) {
        if (opt_scenario == SC_IDLE) return;
        parse_raw(c, p, n, t);
    } else {
        if (parse_ws(c, p, n, t) < 0) return;
        if (c->got_close && c->state == ST_CLOSING) {
            closing_ended(c, t);
            return;
        }
        if (c->got_close && c->state != ST_CLOSING) {
            conn_fail(c, "server sent a close frame");
            return;
        }
    }
    if (c->fd >= 0 && (c->q_frames || c->xlen)) flush(c);
    /* TLS: bytes already decrypted wait in OpenSSL, and epoll will not say so */
    if (c->fd >= 0 && c->ssl && SSL_pending(c->ssl) > 0) on_readable(c);
}

/* Drive the TLS handshake; once it is done, send the opening handshake (or the raw byte). */
static void tls_continue(conn *c) {
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        send_request(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        if (c->want_out) ep_set(c, 0);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        if (!c->want_out) ep_set(c, 1);
        return;
    }
    char msg[160];
    unsigned long code = ERR_get_error();
    snprintf(msg, sizeof msg, "TLS handshake failed: %s", code ? ERR_reason_error_string(code) : "connection closed");
    ERR_clear_error();
    conn_fail(c, msg);
}

/* The transport is up (TCP, and TLS with --tls): send the upgrade request (raw: one byte). */
static void send_request(conn *c) {
    c->state = ST_HANDSHAKE;
    const uint8_t *data = opt_mode == MODE_WS ? (const uint8_t *)request : (const uint8_t *)"x";
    size_t len = opt_mode == MODE_WS ? (size_t)request_len : 1;
    if (opt_mode == MODE_WS) {
        c->hbuf = malloc(HBUF_SIZE);
        c->hlen = 0;
    }
    if (io_write(c, data, len, 0) != (ssize_t)len) {
        conn_fail(c, opt_mode == MODE_WS ? "short write of the handshake request" : "write failed");
        return;
    }
    if (c->want_out) ep_set(c, 0);
}

static void on_writable(conn *c) {
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            char msg[128];
            snprintf(msg, sizeof msg, "connect: %s", strerror(err));
            conn_fail(c, msg);
            if (opt_scenario == SC_HANDSHAKE && running && now() < t_measure1) conn_start(c);
            return;
        }
        if (opt_tls) {
            c->ssl = SSL_new(tls_ctx);
            if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) die("SSL_new failed");
            SSL_set_tlsext_host_name(c->ssl, "localhost");
            SSL_set_connect_state(c->ssl);
            c->state = ST_TLS;
            tls_continue(c);
            return;
        }
        send_request(c);
        return;
    }
    if (c->state == ST_TLS) {
        tls_continue(c);
        return;
    }
    flush(c);
}

/* ---------------------------------------------------------------- output */
static void print_result(const char *event, double seconds, struct rusage *ru0, struct rusage *ru1, double wall) {
    double cpu = 0;
    if (ru0 && ru1) {
        cpu = (ru1->ru_utime.tv_sec - ru0->ru_utime.tv_sec) + (ru1->ru_utime.tv_usec - ru0->ru_utime.tv_usec) * 1e-6 +
              (ru1->ru_stime.tv_sec - ru0->ru_stime.tv_sec) + (ru1->ru_stime.tv_usec - ru0->ru_stime.tv_usec) * 1e-6;
    }
    const char *sc = opt_scenario == SC_ECHO ? "echo" : opt_scenario == SC_HANDSHAKE ? "handshake" : "idle";
    printf("{\"event\": \"%s\", \"scenario\": \"%s\", \"mode\": \"%s\", \"conns\": %d, \"inflight\": %d, "
           "\"size\": %zu, \"binary\": %s, \"seconds\": %.6f, \"msgs\": %llu, \"bytes\": %llu, "
           "\"msgs_total\": %llu, \"msgs_per_s\": %.1f, \"mb_per_s\": %.3f, "
           "\"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f, "
           "\"handshakes\": %llu, \"handshakes_total\": %llu, \"handshakes_per_s\": %.1f, "
           "\"open\": %d, \"failed\": %d, \"loadgen_cpu\": %.3f, \"errors\": %llu, \"first_error\": \"%s\", "
           "\"tls\": %s}\n",
           event, sc, opt_mode == MODE_WS ? "ws" : "raw", opt_conns, opt_inflight, opt_size,
           opt_binary ? "true" : "false", seconds, (unsigned long long)m_msgs, (unsigned long long)m_bytes,
           (unsigned long long)all_msgs, seconds > 0 ? m_msgs / seconds : 0.0,
           seconds > 0 ? m_bytes / seconds / 1e6 : 0.0, percentile(0.50), percentile(0.99), percentile(0.999),
           lat_max_us, (unsigned long long)m_handshakes, (unsigned long long)all_handshakes,
           seconds > 0 ? m_handshakes / seconds : 0.0, n_open, n_failed, wall > 0 ? cpu / wall : 0.0,
           (unsigned long long)errors, first_error, opt_tls ? "true" : "false");
    fflush(stdout);
}

/* ---------------------------------------------------------------- main */
static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port N [--host 127.0.0.1] [--path /echo] [--mode ws|raw]\n"
            "               [--scenario echo|handshake|idle] [--conns N] [--inflight K] [--size BYTES]\n"
            "               [--binary] [--duration S] [--warmup S] [--concurrency N] [--setup-timeout S] [--tls]\n");
    exit(2);
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--host")) opt_host = v;
        else if (ARG("--port")) opt_port = atoi(v);
        else if (ARG("--path")) opt_path = v;
        else if (ARG("--mode")) opt_mode = strcmp(v, "raw") == 0 ? MODE_RAW : MODE_WS;
        else if (ARG("--scenario")) {
            if (strcmp(v, "echo") == 0) opt_scenario = SC_ECHO;
            else if (strcmp(v, "handshake") == 0) opt_scenario = SC_HANDSHAKE;
            else if (strcmp(v, "idle") == 0) opt_scenario = SC_IDLE;
            else usage();
        } else if (ARG("--conns")) opt_conns = atoi(v);
        else if (ARG("--inflight")) opt_inflight = atoi(v);
        else if (ARG("--size")) opt_size = (size_t)strtoull(v, NULL, 10);
        else if (strcmp(a, "--binary") == 0) opt_binary = 1;
        else if (ARG("--duration")) opt_duration = atof(v);
        else if (ARG("--warmup")) opt_warmup = atof(v);
        else if (ARG("--concurrency")) opt_concurrency = atoi(v);
        else if (ARG("--setup-timeout")) opt_setup_timeout = atof(v);
        else if (strcmp(a, "--tls") == 0) opt_tls = 1;
        else usage();
#undef ARG
    }
    if (opt_port <= 0 || opt_conns <= 0 || opt_inflight <= 0 || opt_size == 0) usage();
}

static void build_frames(void) {
    payload = malloc(opt_size);
    for (size_t i = 0; i < opt_size; i++)
        payload[i] = opt_binary ? (uint8_t)(i * 131 + 7) : (uint8_t)('a' + i % 26);
    size_t hdr = opt_mode == MODE_RAW ? 0 : 2 + (opt_size < 126 ? 0 : opt_size < 65536 ? 2 : 8) + 4;
    frame_len = hdr + opt_size;
    uint8_t *frame = malloc(frame_len);
    if (opt_mode == MODE_WS) {
        uint8_t *p = frame;
        *p++ = 0x80 | (opt_binary ? 0x2 : 0x1);
        if (opt_size < 126) *p++ = 0x80 | (uint8_t)opt_size;
        else if (opt_size < 65536) {
            *p++ = 0x80 | 126;
            *p++ = (uint8_t)(opt_size >> 8);
            *p++ = (uint8_t)opt_size;
        } else {
            *p++ = 0x80 | 127;
            for (int s = 56; s >= 0; s -= 8) *p++ = (uint8_t)((uint64_t)opt_size >> s);
        }
        memcpy(p, mask_key, 4);
        p += 4;
        for (size_t i = 0; i < opt_size; i++) p[i] = payload[i] ^ mask_key[i & 3];
    } else {
        memcpy(frame, payload, opt_size);
    }
    sendbuf_frames = opt_inflight;
    while (sendbuf_frames > 1 && sendbuf_frames * frame_len > (4u << 20)) sendbuf_frames--;
    sendbuf = malloc(sendbuf_frames * frame_len);
    for (int i = 0; i < sendbuf_frames; i++) memcpy(sendbuf + i * frame_len, frame, frame_len);
    free(frame);
    request_len = snprintf(request, sizeof request,
                           "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                           opt_path, opt_host, opt_port);
}

static int poll_once(struct epoll_event *evs, int maxev, int timeout_ms) {
    int n = epoll_wait(epfd, evs, maxev, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return 0;
        die("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
        conn *c = evs[i].data.ptr;
        if (c == NULL) continue; /* stdin, handled by caller */
        if (c->fd < 0) continue;
        uint32_t e = evs[i].events;
        if (c->state == ST_CONNECTING) {
            if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(c);
            continue;
        }
        if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        if (c->fd >= 0 && (e & EPOLLOUT)) on_writable(c);
    }
    return n;
}

/* Close every open connection cleanly (close handshake; raw: half-close), bounded in time. */
static void close_all(struct epoll_event *evs, int maxev, double timeout) {
    for (int i = 0; i < nconns; i++) {
        conn *c = &conns[i];
        if (c->state != ST_OPEN) continue;
        if (opt_mode == MODE_WS) {
            send_close(c);
            flush(c);
        } else {
            shutdown(c->fd, SHUT_WR);
            c->state = ST_CLOSING;
        }
    }
    double stop = now() + timeout;
    while (n_open > 0 && now() < stop) poll_once(evs, maxev, 10);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(opt_port);
    if (inet_pton(AF_INET, opt_host, &addr.sin_addr) != 1) die("bad --host %s (an IPv4 address)", opt_host);
    if ((ntohl(addr.sin_addr.s_addr) >> 24) != 127) die("refusing non-loopback host %s", opt_host);

    build_frames();
    if (opt_tls) tls_setup();
    rbuf = malloc(RBUF_SIZE);
    hist = calloc(HIST_BUCKETS, sizeof *hist);
    nconns = opt_conns;
    conns = calloc(nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conns[i].ts = calloc(opt_inflight, sizeof(double));
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    int maxev = 1024;
    struct epoll_event *evs = calloc(maxev, sizeof *evs);
    t_measure0 = 1e300;
    t_measure1 = 1e300;

    if (opt_scenario == SC_HANDSHAKE) {
        double t0 = now();
        t_measure0 = t0 + opt_warmup;
        t_measure1 = t_measure0 + opt_duration;
        for (int i = 0; i < nconns; i++) conn_start(&conns[i]);
        struct rusage ru0, ru1;
        int have_ru0 = 0;
        for (;;) {
            double t = now();
            if (!have_ru0 && t >= t_measure0) {
                getrusage(RUSAGE_SELF, &ru0);
                have_ru0 = 1;
            }
            if (t >= t_measure1) break;
            poll_once(evs, maxev, 10);
            /* restart slots that died on error */
            if (running)
                for (int i = 0; i < nconns; i++)
                    if (conns[i].state == ST_FREE && now() < t_measure1) conn_start(&conns[i]);
        }
        getrusage(RUSAGE_SELF, &ru1);
        if (!have_ru0) ru0 = ru1;
        print_result("result", opt_duration, &ru0, &ru1, opt_duration);
        /* let the attempts in progress finish (bounded), so servers see clean closes */
        running = 0;
        double stop = now() + 3.0;
        for (;;) {
            int busy = 0;
            for (int i = 0; i < nconns; i++)
                if (conns[i].state != ST_FREE) busy = 1;
            if (!busy || now() > stop) break;
            poll_once(evs, maxev, 10);
        }
        return 0;
    }

    /* echo and idle: open the connections first, at most --concurrency at once */
    double setup0 = now();
    int next = 0;
    for (;;) {
        int pending = 0;
        for (int i = 0; i < next; i++)
            if (conns[i].state == ST_CONNECTING || conns[i].state == ST_TLS || conns[i].state == ST_HANDSHAKE) pending++;
        while (next < nconns && pending < opt_concurrency) {
            conn_start(&conns[next++]);
            pending++;
        }
        if (next == nconns && pending == 0) break;
        if (now() - setup0 > opt_setup_timeout) {
            error_note("setup timeout: %d of %d connections open", n_open, nconns);
            break;
        }
        poll_once(evs, maxev, 50);
    }
    double setup_s = now() - setup0;

    if (opt_scenario == SC_IDLE) {
        m_handshakes = all_handshakes = n_open;
        print_result("ready", setup_s, NULL, NULL, 0);
        fprintf(stderr, "loadgen: %d connections open in %.2f s; waiting for stdin\n", n_open, setup_s);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
        for (;;) {
            int n = epoll_wait(epfd, evs, maxev, -1);
            if (n < 0 && errno != EINTR) break;
            int quit = 0;
            for (int i = 0; i < n; i++)
                if (evs[i].data.ptr == NULL) quit = 1;
            if (quit) break;
            /* re-dispatch the connection events */
            for (int i = 0; i < n; i++) {
                conn *c = evs[i].data.ptr;
                if (c == NULL || c->fd < 0) continue;
                if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
                if (c->fd >= 0 && (evs[i].events & EPOLLOUT)) on_writable(c);
            }
        }
        close_all(evs, maxev, 30.0);
        print_result("done", setup_s, NULL, NULL, 0);
        return 0;
    }

    /* echo */
    if (n_open == 0) {
        print_result("result", 0, NULL, NULL, 0);
        return 1;
    }
    double t0 = now();
    t_measure0 = t0 + opt_warmup;
    t_measure1 = t_measure0 + opt_duration;
    for (int i = 0; i < nconns; i++) {
        conn *c = &conns[i];
        if (c->state != ST_OPEN) continue;
        queue_frames(c, opt_inflight, t0);
        flush(c);
    }
    struct rusage ru0, ru1;
    int have_ru0 = 0;
    for (;;) {
        double t = now();
        if (!have_ru0 && t >= t_measure0) {
            getrusage(RUSAGE_SELF, &ru0);
            have_ru0 = 1;
        }
        if (t >= t_measure1) break;
        poll_once(evs, maxev, 10);
        if (n_open == 0) break;
    }
    getrusage(RUSAGE_SELF, &ru1);
    if (!have_ru0) ru0 = ru1;
    double measured = now() - t_measure0;
    if (measured > opt_duration) measured = opt_duration;
    if (measured < 0) measured = 0;
    print_result("result", measured, &ru0, &ru1, measured);

    /* drain outstanding echoes, then close cleanly (bounded) */
    running = 0;
    double stop = now() + 3.0;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < nconns; i++)
            if (conns[i].state == ST_OPEN && conns[i].outstanding > 0) busy = 1;
        if (!busy || now() > stop) break;
        poll_once(evs, maxev, 10);
    }
    close_all(evs, maxev, 3.0);
    return 0;
}
