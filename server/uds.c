/* chilld's native Unix-socket transport, for co-located processes.
 *
 * A client connects, and its credentials (SO_PEERCRED) are logged and
 * checked against the allow-list of the config. It hands over a memfd arena
 * once (HELLO, fd by SCM_RIGHTS), which must be sealed against shrinking
 * (F_SEAL_SHRINK), so the arena can never be cut under a running kernel and
 * tensors are read and written where they lie, with no copy. Then it sends
 * REQUEST frames (arena offsets, shapes, dtype, mask spec), each submitted
 * to the scheduler at once, so several may be in flight on one connection;
 * each gets one RESULT frame, in completion order. Frames: client/lib/chillwire.h.
 *
 * One thread runs a libuv loop: the listening socket and every connection are
 * uv_poll handles on non-blocking sockets (libuv's own pipe reader does not
 * hand over a memfd). A worker that finishes a request writes its RESULT
 * straight to the socket under the connection's lock; only what does not fit
 * is left for the loop, woken by a uv_async; while much is left unread the
 * loop stops reading that peer. A connection that closes with requests in
 * flight keeps its arena mapped until the last one is answered. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "chillwire.h"
#include "config.h"
#include "hostmem.h"
#include "log.h"
#include "request.h"
#include "uds.h"
#include "wire.h"

typedef struct uds_conn uds_conn;

typedef struct uds_call {
    chill_request req;
    uds_conn *conn;
    uint64_t id;
} uds_call;

struct uds_conn {
    int fd;
    uv_poll_t poll;
    int polling;                   /* the poll handle is open (not yet closed) */
    int closing;                   /* no more reading; freed once inflight is 0 */
    pid_t pid;
    uid_t uid;
    gid_t gid;
    char *arena;
    size_t arena_bytes;
    int arena_pinned;     /* registered for DMA (server/hostmem.h) */
    int pending_fd;                /* a descriptor received, for the HELLO */
    _Alignas(uint64_t) char in[sizeof(chill_wire_request)]; /* the frame being read, aligned for its structs */
    size_t in_len;
    pthread_mutex_t lock;          /* out and inflight, shared with the workers */
    char *out;
    size_t out_len, out_cap;
    int inflight;
    uds_conn *next;
};

static struct {
    uv_loop_t loop;
    uv_poll_t listen_poll;
    uv_async_t wake;               /* a worker left output, or a connection went idle */
    uv_async_t stop;               /* chill_uds_stop() */
    pthread_t thread;
    int running, stopping;
    int listen_fd;
    char path[108];
    chill_uds_config cfg;
    const chill_config *c;
    struct chill_scheduler *sched;
    uds_conn *conns;
} chill_uds;

static void uds_on_io(uv_poll_t *h, int status, int events);

/* ---- output ----------------------------------------------------------------- */

/* Writes what is buffered; returns -1 when the peer is gone. Lock held. */
static int uds_flush(uds_conn *k) {
    size_t sent = 0;
    while (sent < k->out_len) {
        ssize_t n = send(k->fd, k->out + sent, k->out_len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            k->out_len = 0;
            return -1;
        }
        sent += (size_t)n;
    }
    memmove(k->out, k->out + sent, k->out_len - sent);
    k->out_len -= sent;
    return 0;
}

/* Appends a WELCOME or RESULT frame and tries to send it. Lock held. 1 when
 * bytes are left for the loop to send. */
static int uds_put_result(uds_conn *k, uint16_t type, uint64_t id, int status, int code, const char *msg) {
    uint32_t mlen = status ? (uint32_t)strnlen(msg, CHILL_WIRE_MESSAGE_MAX) : 0;
    chill_wire_result r = {{CHILL_WIRE_MAGIC, type, CHILL_WIRE_VERSION, (uint32_t)sizeof r + mlen, 0, id},
                           status, code, mlen, 0};
    size_t need = k->out_len + sizeof r + mlen;
    if (k->closing)
        return 0;
    if (need > k->out_cap) {
        size_t cap = k->out_cap ? k->out_cap : 4096;
        while (cap < need)
            cap *= 2;
        char *p = realloc(k->out, cap);
        if (!p)
            return 0;
        k->out = p;
        k->out_cap = cap;
    }
    memcpy(k->out + k->out_len, &r, sizeof r);
    memcpy(k->out + k->out_len + sizeof r, msg, mlen);
    k->out_len = need;
    uds_flush(k);
    return k->out_len > 0;
}

/* ---- connections -------------------------------------------------------------- */

static void uds_free(uds_conn *k) {
    for (uds_conn **p = &chill_uds.conns; *p; p = &(*p)->next)
        if (*p == k) {
            *p = k->next;
            break;
        }
    if (k->arena_pinned)
        chill_hostmem_unregister(k->arena);
    if (k->arena)
        munmap(k->arena, k->arena_bytes);
    if (k->pending_fd >= 0)
        close(k->pending_fd);
    pthread_mutex_destroy(&k->lock);
    free(k->out);
    free(k);
}

static void uds_on_closed(uv_handle_t *h) {
    uds_conn *k = h->data;
    close(k->fd);
    k->polling = 0;
    pthread_mutex_lock(&k->lock);
    int idle = k->inflight == 0;
    pthread_mutex_unlock(&k->lock);
    if (idle)
        uds_free(k);
    if (chill_uds.stopping && !chill_uds.conns)
        uv_stop(&chill_uds.loop);
}

/* Stops reading; the connection goes once its requests are answered. */
static void uds_close(uds_conn *k, const char *why) {
    if (k->closing)
        return;
    pthread_mutex_lock(&k->lock);
    k->closing = 1;
    int inflight = k->inflight;
    pthread_mutex_unlock(&k->lock);
    chill_log(CHILL_LOG_INFO, "uds_closed", "pid=%d uid=%u reason=\"%s\" in_flight=%d", (int)k->pid,
              (unsigned)k->uid, why, inflight);
    uv_close((uv_handle_t *)&k->poll, uds_on_closed);
}

/* Answers a failure that ends the connection (bad hello, bad frame). */
static void uds_refuse(uds_conn *k, int code, const char *msg) {
    pthread_mutex_lock(&k->lock);
    uds_put_result(k, k->arena ? CHILL_WIRE_RESULT : CHILL_WIRE_WELCOME, 0, CHILL_ERR_INVALID, code, msg);
    pthread_mutex_unlock(&k->lock);
    chill_log(CHILL_LOG_WARN, "uds_refused", "pid=%d uid=%u code=%d error=\"%s\"", (int)k->pid, (unsigned)k->uid,
              code, msg);
    uds_close(k, msg);
}

static int uds_allowed(const chill_uds_config *u, uid_t uid, gid_t gid) {
    if (u->n_allow_uid == 0 && u->n_allow_gid == 0)
        return uid == geteuid();
    for (int i = 0; i < u->n_allow_uid; i++)
        if ((int64_t)uid == u->allow_uid[i])
            return 1;
    for (int i = 0; i < u->n_allow_gid; i++)
        if ((int64_t)gid == u->allow_gid[i])
            return 1;
    return 0;
}

static void uds_accept_one(int fd) {
    uds_conn *k = calloc(1, sizeof *k);
    if (!k) {
        close(fd);
        return;
    }
    k->fd = fd;
    k->pending_fd = -1;
    pthread_mutex_init(&k->lock, NULL);
    struct ucred cred = {0};
    socklen_t len = sizeof cred;
    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    k->pid = cred.pid, k->uid = cred.uid, k->gid = cred.gid;
    k->next = chill_uds.conns;
    chill_uds.conns = k;
    uv_poll_init(&chill_uds.loop, &k->poll, fd);
    k->poll.data = k;
    k->polling = 1;
    chill_log(CHILL_LOG_INFO, "uds_connected", "pid=%d uid=%u gid=%u", (int)k->pid, (unsigned)k->uid,
              (unsigned)k->gid);
    if (!uds_allowed(&chill_uds.cfg, k->uid, k->gid)) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "uid %u gid %u (pid %d) may not use this socket: it is not on unix_socket.allow_uids or allow_gids",
                 (unsigned)k->uid, (unsigned)k->gid, (int)k->pid);
        uds_refuse(k, 403, msg);
        return;
    }
    uv_poll_start(&k->poll, UV_READABLE, uds_on_io);
}

static void uds_on_listen(uv_poll_t *h, int status, int events) {
    (void)h, (void)status, (void)events;
    for (;;) {
        int fd = accept4(chill_uds.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        uds_accept_one(fd);
    }
}

/* ---- frames ------------------------------------------------------------------- */

static void uds_hello(uds_conn *k, const chill_wire_hello *h) {
    char msg[256];
    int fd = k->pending_fd;
    k->pending_fd = -1;
    int seals = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
    struct stat st;
    if (fd < 0)
        snprintf(msg, sizeof msg, "the HELLO frame carried no file descriptor: send the arena memfd with SCM_RIGHTS");
    else if (seals < 0 || !(seals & F_SEAL_SHRINK))
        snprintf(msg, sizeof msg, "the arena is not sealed against shrinking: memfd_create with MFD_ALLOW_SEALING, "
                                  "then fcntl(F_ADD_SEALS, F_SEAL_SHRINK)");
    else if (h->arena_bytes == 0 || h->arena_bytes > chill_uds.cfg.max_arena_bytes)
        snprintf(msg, sizeof msg, "arena of %llu bytes: accepted is 1..%llu (unix_socket.max_arena_bytes)",
                 (unsigned long long)h->arena_bytes, (unsigned long long)chill_uds.cfg.max_arena_bytes);
    else if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < h->arena_bytes)
        snprintf(msg, sizeof msg, "the arena memfd has %lld bytes, fewer than the %llu the HELLO announces",
                 (long long)st.st_size, (unsigned long long)h->arena_bytes);
    else if ((k->arena = mmap(NULL, h->arena_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        k->arena = NULL;
        snprintf(msg, sizeof msg, "cannot map the arena: %s", strerror(errno));
    } else
        msg[0] = '\0';
    if (fd >= 0)
        close(fd);
    if (msg[0]) {
        uds_refuse(k, 400, msg);
        return;
    }
    k->arena_bytes = h->arena_bytes;
    k->arena_pinned = chill_hostmem_register(k->arena, k->arena_bytes);
    chill_log(CHILL_LOG_INFO, "uds_arena", "pid=%d uid=%u bytes=%zu pinned=%d", (int)k->pid, (unsigned)k->uid,
              k->arena_bytes, k->arena_pinned);
    pthread_mutex_lock(&k->lock);
    int pending = uds_put_result(k, CHILL_WIRE_WELCOME, h->h.id, 0, 200, "");
    pthread_mutex_unlock(&k->lock);
    if (pending)
        uv_poll_start(&k->poll, UV_READABLE | UV_WRITABLE, uds_on_io);
}

/* Called by a scheduler worker, once per request. */
static void uds_done(chill_request *req) {
    uds_call *call = req->user;
    uds_conn *k = call->conn;
    pthread_mutex_lock(&k->lock);
    int pending = uds_put_result(k, CHILL_WIRE_RESULT, call->id, req->status, req->status ? req->http_status : 200,
                                 req->error);
    k->inflight--;
    int wake = pending || (k->closing && k->inflight == 0);
    pthread_mutex_unlock(&k->lock);
    free(call);
    if (wake)
        uv_async_send(&chill_uds.wake);
}

static void uds_request(uds_conn *k, const chill_wire_request *w) {
    char msg[512];
    uds_call *call = calloc(1, sizeof *call);
    if (!call) {
        pthread_mutex_lock(&k->lock);
        uds_put_result(k, CHILL_WIRE_RESULT, w->h.id, CHILL_ERR_NOMEM, 503, "out of memory for the request");
        pthread_mutex_unlock(&k->lock);
        return;
    }
    chill_request *r = &call->req;
    chill_params_init(&r->params);
    call->conn = k;
    call->id = w->h.id;
    if (chill_wire_decode(chill_uds.c, k->arena, k->arena_bytes, w, &r->params, &r->model, msg, sizeof msg) != 0) {
        pthread_mutex_lock(&k->lock);
        uds_put_result(k, CHILL_WIRE_RESULT, w->h.id, CHILL_ERR_INVALID, 400, msg);
        pthread_mutex_unlock(&k->lock);
        free(call);
        return;
    }
    r->device = -1;
    r->deadline_ns = chill_uds.c->default_timeout_us > 0
                         ? chill_now_ns() + (uint64_t)chill_uds.c->default_timeout_us * 1000 : 0;
    r->done = uds_done;
    r->user = call;
    pthread_mutex_lock(&k->lock);
    k->inflight++;
    pthread_mutex_unlock(&k->lock);
    chill_submit_result s = chill_submit(chill_uds.sched, r);
    if (s == CHILL_SUBMIT_OK)
        return;
    pthread_mutex_lock(&k->lock);
    k->inflight--;
    uds_put_result(k, CHILL_WIRE_RESULT, w->h.id, CHILL_ERR_UNSUPPORTED, 503,
                   s == CHILL_SUBMIT_FULL ? "the queue is full: retry later" : "chilld is shutting down");
    pthread_mutex_unlock(&k->lock);
    free(call);
}

/* Handles the complete frame in k->in; -1 when the connection must close. */
static int uds_frame(uds_conn *k) {
    const chill_wire_header *h = (const chill_wire_header *)k->in;
    if (h->type == CHILL_WIRE_HELLO && !k->arena) {
        uds_hello(k, (const chill_wire_hello *)k->in);
        return k->closing ? -1 : 0;
    }
    if (h->type == CHILL_WIRE_REQUEST && k->arena) {
        uds_request(k, (const chill_wire_request *)k->in);
        return 0;
    }
    uds_refuse(k, 400, k->arena ? "unexpected frame: after the HELLO only REQUEST frames are accepted"
                                 : "the first frame must be a HELLO carrying the arena");
    return -1;
}

/* How long the frame in k->in is, once its header is in; 0 when the header is bad. */
static size_t uds_frame_len(const uds_conn *k) {
    const chill_wire_header *h = (const chill_wire_header *)k->in;
    size_t want = h->type == CHILL_WIRE_HELLO ? sizeof(chill_wire_hello) : sizeof(chill_wire_request);
    if (h->magic != CHILL_WIRE_MAGIC || h->version != CHILL_WIRE_VERSION || h->length != want)
        return 0;
    return want;
}

/* Results a peer leaves unread past this pause its reading: a client that
 * sends without reading cannot make chilld buffer without bound. */
#define CHILL_UDS_OUT_HIGH (64 * 1024)

static void uds_read(uds_conn *k) {
    for (;;) {
        pthread_mutex_lock(&k->lock);
        int backlog = k->out_len > CHILL_UDS_OUT_HIGH;
        pthread_mutex_unlock(&k->lock);
        if (backlog) {
            uv_poll_start(&k->poll, UV_WRITABLE, uds_on_io);
            return;
        }
        size_t want = k->in_len < sizeof(chill_wire_header) ? sizeof(chill_wire_header) : uds_frame_len(k);
        if (want == 0) {
            uds_refuse(k, 400, "bad frame header: magic, version or length is not chilld's (client/PROTOCOL.md)");
            return;
        }
        if (k->in_len == want) {
            if (uds_frame(k) != 0)
                return;
            k->in_len = 0;
            continue;
        }
        union { struct cmsghdr h; char buf[CMSG_SPACE(4 * sizeof(int))]; } ctl;
        struct iovec iov = {k->in + k->in_len, want - k->in_len};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
        ssize_t n = recvmsg(k->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                    if (k->pending_fd < 0 && !k->arena)
                        k->pending_fd = fd;
                    else
                        close(fd);
                }
        if (n <= 0) {
            uds_close(k, n == 0 ? "peer closed" : strerror(errno));
            return;
        }
        k->in_len += (size_t)n;
    }
}

static void uds_on_io(uv_poll_t *h, int status, int events) {
    uds_conn *k = h->data;
    if (status < 0) {
        uds_close(k, uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE) {
        pthread_mutex_lock(&k->lock);
        int gone = uds_flush(k), rest = k->out_len > 0;
        pthread_mutex_unlock(&k->lock);
        if (gone) {
            uds_close(k, "peer gone while writing");
            return;
        }
        if (!rest)
            uv_poll_start(&k->poll, UV_READABLE, uds_on_io);
    }
    if (events & UV_READABLE)
        uds_read(k);
}

/* Woken by a worker: output left to send, or a closed connection now idle. */
static void uds_on_wake(uv_async_t *a) {
    (void)a;
    for (uds_conn *k = chill_uds.conns, *next; k; k = next) {
        next = k->next;
        pthread_mutex_lock(&k->lock);
        int rest = k->out_len > 0, idle = k->inflight == 0;
        pthread_mutex_unlock(&k->lock);
        if (!k->closing && rest)
            uv_poll_start(&k->poll, UV_READABLE | UV_WRITABLE, uds_on_io);
        if (k->closing && !k->polling && idle)
            uds_free(k);
    }
    if (chill_uds.stopping && !chill_uds.conns)
        uv_stop(&chill_uds.loop);
}

/* ---- start and stop ---------------------------------------------------------- */

static void uds_on_stop(uv_async_t *a);

static int uds_listen(const chill_uds_config *u, char *err, size_t errlen) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char *end;
    unsigned long mode = strtoul(u->mode, &end, 8);
    if (*end || end == u->mode || mode > 0777) {
        snprintf(err, errlen, "unix_socket.mode \"%s\": accepted is an octal file mode such as \"0660\"", u->mode);
        return -1;
    }
    memcpy(a.sun_path, u->path, strlen(u->path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct stat st;
    if (lstat(u->path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(u->path); /* a socket left by an earlier run */
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || chmod(u->path, (mode_t)mode) != 0 ||
        listen(fd, 128) != 0) {
        snprintf(err, errlen, "unix_socket.path %s: cannot listen: %s", u->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    chill_uds.listen_fd = fd;
    return 0;
}

static void *uds_main(void *arg) {
    (void)arg;
    uv_run(&chill_uds.loop, UV_RUN_DEFAULT);
    return NULL;
}

int chill_uds_start(const chill_uds_config *u, const chill_config *c, struct chill_scheduler *s, char *err,
                    size_t errlen) {
    if (!u->path[0])
        return 0;
    if (uds_listen(u, err, errlen) != 0)
        return -1;
    chill_uds.cfg = *u;
    chill_uds.c = c;
    chill_uds.sched = s;
    chill_uds.stopping = 0;
    snprintf(chill_uds.path, sizeof chill_uds.path, "%s", u->path);
    uv_loop_init(&chill_uds.loop);
    uv_async_init(&chill_uds.loop, &chill_uds.wake, uds_on_wake);
    uv_async_init(&chill_uds.loop, &chill_uds.stop, uds_on_stop);
    uv_poll_init(&chill_uds.loop, &chill_uds.listen_poll, chill_uds.listen_fd);
    uv_poll_start(&chill_uds.listen_poll, UV_READABLE, uds_on_listen);
    if (pthread_create(&chill_uds.thread, NULL, uds_main, NULL) != 0) {
        snprintf(err, errlen, "unix socket: cannot start its thread");
        return -1;
    }
    pthread_setname_np(chill_uds.thread, "chill-uds");
    chill_uds.running = 1;
    chill_log(CHILL_LOG_INFO, "uds_listening", "path=%s mode=%s allow_uids=%d allow_gids=%d", u->path, u->mode,
              u->n_allow_uid, u->n_allow_gid);
    return 0;
}

static void uds_on_stop(uv_async_t *a) {
    (void)a;
    chill_uds.stopping = 1;
    uv_close((uv_handle_t *)&chill_uds.listen_poll, NULL);
    uv_close((uv_handle_t *)&chill_uds.stop, NULL);
    for (uds_conn *k = chill_uds.conns; k; k = k->next)
        uds_close(k, "chilld is stopping");
    uv_async_send(&chill_uds.wake);
}

void chill_uds_stop(void) {
    if (!chill_uds.running)
        return;
    chill_uds.running = 0;
    uv_async_send(&chill_uds.stop);
    pthread_join(chill_uds.thread, NULL);
    uv_close((uv_handle_t *)&chill_uds.wake, NULL);
    uv_run(&chill_uds.loop, UV_RUN_NOWAIT);
    uv_loop_close(&chill_uds.loop);
    close(chill_uds.listen_fd);
    unlink(chill_uds.path);
    chill_log(CHILL_LOG_INFO, "uds_stopped", "path=%s", chill_uds.path);
}
