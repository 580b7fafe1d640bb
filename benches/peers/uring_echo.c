/* The C liburing peer in `cargo bench --bench compare`: a TCP echo server as
 * plain as liburing makes it, to set ringio's echo_server beside the same
 * kernel paths with no Rust in between.
 *
 *     cc -O2 -o uring_echo benches/peers/uring_echo.c -luring
 *     ./uring_echo --addr 127.0.0.1:7879 [--ring default|defer] [--max-seconds N]
 *
 * One ring of 4096 entries, default set-up flags (or SINGLE_ISSUER and
 * DEFER_TASKRUN with `--ring defer`, ringio's default ring), and one
 * io_uring_submit_and_wait_timeout per tick. Each connection has a 16 KiB
 * buffer (as ringio's echo_server) and one operation in flight: a plain recv,
 * then sends until all of it is echoed, then the next recv. One accept is in
 * flight, re-armed as it completes. The first stdout line is
 * `listening on ADDR (backend: c liburing)`, as the other servers print. */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif

enum { ENTRIES = 4096, BUFFER_BYTES = 16 * 1024, LISTEN_BACKLOG = 4096 };
enum { OP_ACCEPT, OP_ACCEPT_RETRY, OP_RECV, OP_SEND };

struct conn { size_t len, sent; char buf[BUFFER_BYTES]; };

static struct io_uring ring;
static struct conn **conns; /* by fd */
static rlim_t conns_max;

static struct io_uring_sqe *sqe_get(void) {
    struct io_uring_sqe *sqe;
    while ((sqe = io_uring_get_sqe(&ring)) == NULL) io_uring_submit(&ring); /* queue full */
    return sqe;
}

static void push_recv(int fd) {
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv(sqe, fd, conns[fd]->buf, BUFFER_BYTES, 0);
    io_uring_sqe_set_data64(sqe, (__u64)fd << 8 | OP_RECV);
}

static void push_send(int fd) {
    struct conn *c = conns[fd];
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, fd, c->buf + c->sent, c->len - c->sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (__u64)fd << 8 | OP_SEND);
}

static void push_accept(int listener) {
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_accept(sqe, listener, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, (__u64)listener << 8 | OP_ACCEPT);
}

static void complete(int fd, int op, int res) {
    static struct __kernel_timespec accept_retry = { .tv_nsec = 50000000 };
    if (op == OP_ACCEPT && res < 0) { /* out of descriptors, say: try again shortly, as ringio's server */
        fprintf(stderr, "uring_echo: accept: %s; retrying shortly\n", strerror(-res));
        struct io_uring_sqe *sqe = sqe_get();
        io_uring_prep_timeout(sqe, &accept_retry, 0, 0);
        io_uring_sqe_set_data64(sqe, (__u64)fd << 8 | OP_ACCEPT_RETRY);
    } else if (op == OP_ACCEPT_RETRY) {
        push_accept(fd);
    } else if (op == OP_ACCEPT) {
        push_accept(fd);
        if ((rlim_t)res >= conns_max || !(conns[res] = malloc(sizeof(struct conn)))) { close(res); return; }
        int one = 1;
        setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        push_recv(res);
    } else if (res <= 0) { /* end of stream, or an error: the connection's one operation is done */
        free(conns[fd]); conns[fd] = NULL; close(fd);
    } else if (op == OP_RECV) {
        conns[fd]->len = (size_t)res; conns[fd]->sent = 0; push_send(fd);
    } else {
        conns[fd]->sent += (size_t)res;
        if (conns[fd]->sent < conns[fd]->len) push_send(fd); else push_recv(fd);
    }
}

static int usage(void) {
    fprintf(stderr, "usage: uring_echo --addr IPV4:PORT [--ring default|defer] [--max-seconds N]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *addr = NULL, *ring_flags = "default";
    long max_seconds = -1;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--addr")) addr = argv[i + 1];
        else if (!strcmp(argv[i], "--ring")) ring_flags = argv[i + 1];
        else if (!strcmp(argv[i], "--max-seconds")) max_seconds = atol(argv[i + 1]);
        else return usage();
    }
    char host[64];
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon || colon - addr >= (long)sizeof host) return usage();
    memcpy(host, addr, colon - addr); host[colon - addr] = 0;
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(atoi(colon + 1)) };
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) return usage();

    struct rlimit limit; /* as many connections as the hard limit allows */
    getrlimit(RLIMIT_NOFILE, &limit); limit.rlim_cur = limit.rlim_max; setrlimit(RLIMIT_NOFILE, &limit);
    conns_max = limit.rlim_cur < (1 << 20) ? limit.rlim_cur : (1 << 20);
    conns = calloc(conns_max, sizeof *conns);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len = sizeof sin;
    if (listener < 0 || bind(listener, (struct sockaddr *)&sin, sizeof sin) || listen(listener, LISTEN_BACKLOG) ||
        getsockname(listener, (struct sockaddr *)&sin, &len)) { perror("uring_echo: listen"); return 1; }

    struct io_uring_params params = { 0 };
    if (!strcmp(ring_flags, "defer")) params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    else if (strcmp(ring_flags, "default")) return usage();
    int error = io_uring_queue_init_params(ENTRIES, &ring, &params);
    if (error) { fprintf(stderr, "uring_echo: io_uring_queue_init: %s\n", strerror(-error)); return 1; }

    inet_ntop(AF_INET, &sin.sin_addr, host, sizeof host);
    printf("listening on %s:%d (backend: c liburing)\n", host, ntohs(sin.sin_port));
    fflush(stdout);

    time_t deadline = max_seconds < 0 ? 0 : time(NULL) + max_seconds;
    struct __kernel_timespec wait_max = { .tv_sec = 1 }; /* so --max-seconds is noticed */
    push_accept(listener);
    while (!deadline || time(NULL) < deadline) {
        struct io_uring_cqe *cqe;
        error = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &wait_max, NULL);
        if (error < 0 && error != -ETIME && error != -EINTR) {
            fprintf(stderr, "uring_echo: io_uring_submit_and_wait_timeout: %s\n", strerror(-error));
            return 1;
        }
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            __u64 data = io_uring_cqe_get_data64(cqe);
            complete((int)(data >> 8), (int)(data & 0xff), cqe->res);
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
    }
    return 0;
}
