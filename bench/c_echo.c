/*
 * c_echo: a minimal single-threaded epoll TCP echo server in C, used only to
 * measure the load generator's own ceiling (bench/run.py's "c-tcp" server):
 * whatever rate the load generator reaches against it is far above what any
 * Python server reaches, so the generator is not what limits them.
 *
 * Build: cc -O2 -o c_echo c_echo.c      Run: c_echo PORT   (binds 127.0.0.1)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int fd;
    char *pend; /* bytes not yet written back */
    size_t plen, poff;
} client;

static char buf[256 * 1024];

static void drop(int ep, client *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pend);
    free(c);
}

/* Write out the pending bytes; returns 1 while some remain. */
static int flush_pending(client *c) {
    while (c->poff < c->plen) {
        ssize_t w = write(c->fd, c->pend + c->poff, c->plen - c->poff);
        if (w < 0) return errno == EAGAIN ? 1 : -1;
        c->poff += (size_t)w;
    }
    c->plen = c->poff = 0;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: c_echo PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1024) < 0) {
        perror("c_echo: bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    printf("c_echo listening on 127.0.0.1:%s\n", argv[1]);
    fflush(stdout);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            client *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    client *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                int r = flush_pending(c);
                if (r < 0) {
                    drop(ep, c);
                    continue;
                }
                if (r == 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
                }
                continue;
            }
            if (c->plen) continue; /* wait for the peer to read before reading more */
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                drop(ep, c);
                continue;
            }
            ssize_t w = write(c->fd, buf, (size_t)r);
            if (w < 0) {
                if (errno != EAGAIN) {
                    drop(ep, c);
                    continue;
                }
                w = 0;
            }
            if (w < r) {
                c->pend = realloc(c->pend, (size_t)(r - w));
                memcpy(c->pend, buf + w, (size_t)(r - w));
                c->plen = (size_t)(r - w);
                c->poff = 0;
                struct epoll_event cev = {.events = EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
            }
        }
    }
}
