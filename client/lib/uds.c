/* libchillclient over chilld's native Unix socket (frames in chillwire.h,
 * exchange in client/PROTOCOL.md): at create, a memfd arena sealed against
 * shrinking is made and handed to chilld with SCM_RIGHTS; each infer stages
 * the tensors in it (unless they already lie there), writes one REQUEST frame
 * and reads frames until its RESULT. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "chillwire.h"
#include "client_internal.h"

static chill_client_status chill_cli_uds_wait(chill_client *c, short events, chill_client_error *err) {
    struct pollfd p = {c->fd, events, 0};
    int rc;
    do
        rc = poll(&p, 1, c->timeout_ms > 0 ? (int)c->timeout_ms : -1);
    while (rc < 0 && errno == EINTR);
    if (rc == 0)
        return chill_client_fail(err, CHILL_CLIENT_ERR_TIMEOUT, 0, "no answer on the socket within %ld ms", c->timeout_ms);
    if (rc < 0)
        return chill_client_fail(err, CHILL_CLIENT_ERR_CONNECT, 0, "poll on the socket: %m");
    return CHILL_CLIENT_OK;
}

static chill_client_status chill_cli_uds_send(chill_client *c, const void *buf, size_t len, int pass_fd,
                                              chill_client_error *err) {
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
    struct iovec iov = {(void *)buf, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass_fd >= 0) {
        memset(&ctl, 0, sizeof ctl);
        m.msg_control = ctl.buf;
        m.msg_controllen = sizeof ctl.buf;
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(h), &pass_fd, sizeof(int));
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            chill_client_status s = chill_cli_uds_wait(c, POLLOUT, err);
            if (s != CHILL_CLIENT_OK)
                return s;
            continue;
        }
        if (n < 0)
            return chill_client_fail(err, CHILL_CLIENT_ERR_CONNECT, 0, "writing to chilld's socket: %m");
        done += (size_t)n;
        iov.iov_base = (char *)buf + done;
        iov.iov_len = len - done;
        m.msg_control = NULL;
        m.msg_controllen = 0;
    }
    return CHILL_CLIENT_OK;
}

static chill_client_status chill_cli_uds_recv(chill_client *c, void *buf, size_t len, chill_client_error *err) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = recv(c->fd, (char *)buf + done, len - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            chill_client_status s = chill_cli_uds_wait(c, POLLIN, err);
            if (s != CHILL_CLIENT_OK)
                return s;
            continue;
        }
        if (n <= 0)
            return chill_client_fail(err, CHILL_CLIENT_ERR_CONNECT, 0, "chilld closed the socket%s%s",
                                     n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
        done += (size_t)n;
    }
    return CHILL_CLIENT_OK;
}

/* Reads one WELCOME or RESULT frame; turns a failure status into err. */
static chill_client_status chill_cli_uds_result(chill_client *c, chill_wire_result *res, chill_client_error *err) {
    chill_client_status s = chill_cli_uds_recv(c, res, sizeof *res, err);
    if (s != CHILL_CLIENT_OK)
        return s;
    if (res->h.magic != CHILL_WIRE_MAGIC || res->h.length != sizeof *res + res->message_len ||
        res->message_len > CHILL_WIRE_MESSAGE_MAX)
        return chill_client_fail(err, CHILL_CLIENT_ERR_PROTOCOL, 0,
                                 "a frame from chilld has magic 0x%08x and length %u: not a chilld socket?",
                                 res->h.magic, res->h.length);
    char msg[CHILL_WIRE_MESSAGE_MAX + 1];
    s = chill_cli_uds_recv(c, msg, res->message_len, err);
    if (s != CHILL_CLIENT_OK)
        return s;
    msg[res->message_len] = '\0';
    if (res->status == 0)
        return CHILL_CLIENT_OK;
    chill_client_status k = res->code == 503   ? CHILL_CLIENT_ERR_OVERLOADED
                            : res->code == 504 ? CHILL_CLIENT_ERR_TIMEOUT
                                               : CHILL_CLIENT_ERR_REJECTED;
    return chill_client_fail(err, k, res->code, "chilld answered %d: %s", res->code, msg);
}

static chill_client_status chill_cli_uds_arena(chill_client *c, int *fd, chill_client_error *err) {
    *fd = memfd_create("chillclient-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (*fd < 0)
        return chill_client_fail(err, CHILL_CLIENT_ERR_SYSTEM, 0, "memfd_create: %m");
    if (ftruncate(*fd, (off_t)c->arena_bytes) != 0 || fcntl(*fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        return chill_client_fail(err, CHILL_CLIENT_ERR_SYSTEM, 0, "sizing and sealing a %zu-byte memfd: %m", c->arena_bytes);
    void *p = mmap(NULL, c->arena_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    if (p == MAP_FAILED)
        return chill_client_fail(err, CHILL_CLIENT_ERR_SYSTEM, 0, "mapping a %zu-byte memfd: %m", c->arena_bytes);
    c->arena = p;
    return CHILL_CLIENT_OK;
}

chill_client_status chill_cli_uds_open(chill_client *c, const char *path, chill_client_error *err) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path)
        return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0, "socket path %s is longer than %zu bytes", path,
                                 sizeof a.sun_path - 1);
    memcpy(a.sun_path, path, strlen(path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return chill_client_fail(err, CHILL_CLIENT_ERR_SYSTEM, 0, "socket: %m");
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0)
        return chill_client_fail(err, CHILL_CLIENT_ERR_CONNECT, 0, "connecting to %s: %m", path);
    int fd;
    chill_client_status s = chill_cli_uds_arena(c, &fd, err);
    if (s == CHILL_CLIENT_OK) {
        chill_wire_hello h = {{CHILL_WIRE_MAGIC, CHILL_WIRE_HELLO, CHILL_WIRE_VERSION, sizeof h, 0, 0}, c->arena_bytes};
        s = chill_cli_uds_send(c, &h, sizeof h, fd, err);
    }
    if (fd >= 0)
        close(fd);
    /* chilld may refuse a peer (allow-list) before it reads the HELLO: its
     * answer is still there to read when the send failed. */
    chill_wire_result res;
    if (s == CHILL_CLIENT_OK || s == CHILL_CLIENT_ERR_CONNECT) {
        chill_client_error sent = err ? *err : (chill_client_error){0};
        chill_client_status r = chill_cli_uds_result(c, &res, err);
        if (s != CHILL_CLIENT_OK && r == CHILL_CLIENT_ERR_CONNECT && err)
            *err = sent;
        s = s != CHILL_CLIENT_OK && r == CHILL_CLIENT_ERR_CONNECT ? s : r;
    }
    if (s == CHILL_CLIENT_OK && res.h.type != CHILL_WIRE_WELCOME)
        s = chill_client_fail(err, CHILL_CLIENT_ERR_PROTOCOL, 0, "chilld answered the hello with frame type %u",
                              res.h.type);
    return s;
}

void chill_cli_uds_close(chill_client *c) {
    if (c->fd >= 0)
        close(c->fd);
    if (c->arena)
        munmap(c->arena, c->arena_bytes);
    c->fd = -1;
    c->arena = NULL;
}

chill_client_status chill_cli_uds_infer(chill_client *c, const chill_client_request *r, const chill_client_sizes *sz,
                                        chill_client_error *err) {
    if (c->fd < 0)
        return chill_client_fail(err, CHILL_CLIENT_ERR_CONNECT, 0, "the socket is closed after an earlier error");
    chill_wire_request w;
    memset(&w, 0, sizeof w);
    if (snprintf(w.mask, sizeof w.mask, "%s", r->mask ? r->mask : r->model) >= (int)sizeof w.mask)
        return chill_client_fail(err, CHILL_CLIENT_ERR_INVALID, 0, "mask spec \"%s\" is longer than %d bytes",
                                 w.mask, CHILL_WIRE_MASK_LEN - 1);
    chill_client_layout lay;
    int staged;
    chill_client_status s = chill_client_stage(c, r, sz, &lay, &staged, err);
    if (s != CHILL_CLIENT_OK)
        return s;
    w.h = (chill_wire_header){CHILL_WIRE_MAGIC, CHILL_WIRE_REQUEST, CHILL_WIRE_VERSION, sizeof w, 0, ++c->next_id};
    w.dtype = (uint32_t)r->dtype;
    w.batch = r->batch, w.heads_q = r->heads_q, w.heads_kv = r->heads_kv;
    w.seq_q = r->seq_q, w.seq_k = r->seq_k, w.head_dim = r->head_dim;
    w.q_offset = r->q_offset;
    w.sm_scale = r->sm_scale;
    w.q = lay.q, w.k = lay.k, w.v = lay.v, w.out = lay.out, w.lse = r->lse ? lay.lse : CHILL_WIRE_NONE;
    s = chill_cli_uds_send(c, &w, sizeof w, -1, err);
    chill_wire_result res;
    if (s == CHILL_CLIENT_OK)
        s = chill_cli_uds_result(c, &res, err);
    if (s == CHILL_CLIENT_OK && (res.h.type != CHILL_WIRE_RESULT || res.h.id != w.h.id))
        s = chill_client_fail(err, CHILL_CLIENT_ERR_PROTOCOL, 0, "expected the RESULT of request %llu, got type %u id %llu",
                              (unsigned long long)w.h.id, res.h.type, (unsigned long long)res.h.id);
    if (s == CHILL_CLIENT_OK)
        chill_client_unstage(c, r, sz, &lay, staged);
    if (s == CHILL_CLIENT_ERR_CONNECT || s == CHILL_CLIENT_ERR_PROTOCOL || s == CHILL_CLIENT_ERR_TIMEOUT)
        chill_cli_uds_close(c);
    return s;
}
