/* libFuzzer target: the HTTP request handler, black-box. The input is sent
 * as raw bytes over loopback TCP to an in-process pn_server (routing,
 * limits, Content-Type checks, query options, multipart, sniffing, the
 * audit log); the predictor decodes the image with pn_image_decode_memory
 * and answers a fixed probability, so the network is not what is fuzzed.
 * Whatever arrives, the server must answer with an HTTP status line or
 * close the connection, and keep serving. */
#include "fuzz_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "pneumo/serve.h"

static pn_status fake_predict(void *user, int slot, const void *bytes, size_t size, int want_cam,
                              pn_predict_result *out, pn_error *err)
{
    memset(out, 0, sizeof *out);
    pn_image img;
    pn_status st = pn_image_decode_memory(bytes, size, "upload", 64, 64, &img, err);
    if (st)
        return st;
    out->pred.probability = 0.25f;
    out->pred.width = img.src_w;
    out->pred.height = img.src_h;
    out->pred.is_color = img.is_color;
    pn_image_free(&img);
    return PN_OK;
}

static const pn_predictor predictor = {.n_slots = 1, .predict = fake_predict, .model_json = "{\"id\":\"fuzz\"}",
                                       .model_id = "fuzz", .model_version = "fuzz-1", .default_threshold = 0.5f};

static struct {
    pn_server *server;
    char dir[64], db[96];
} g;

static void stop_server(void)
{
    pn_server_stop(g.server);
    unlink(g.db);
    char wal[128];
    snprintf(wal, sizeof wal, "%s-wal", g.db);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", g.db);
    unlink(wal);
    rmdir(g.dir);
}

static int server_port(void)
{
    if (g.server)
        return pn_server_port(g.server);
    snprintf(g.dir, sizeof g.dir, "/tmp/pneumo-fuzz-http.XXXXXX");
    if (!mkdtemp(g.dir))
        abort();
    snprintf(g.db, sizeof g.db, "%s/audit.db", g.dir);
    pn_serve_options o;
    pn_serve_options_default(&o);
    o.port = 0;
    o.audit_db = g.db;
    o.max_body = 256 * 1024; /* small, so the 413 paths are reachable */
    o.connection_timeout_s = 5;
    o.shutdown_grace_s = 5;
    pn_error err = {0};
    if (pn_server_start(&o, &predictor, &g.server, &err)) {
        fprintf(stderr, "fuzz_http: %s\n", err.msg);
        abort();
    }
    atexit(stop_server);
    return pn_server_port(g.server);
}

/* Sends the request, closes our sending side, reads the answer to EOF. */
static size_t exchange(int port, const uint8_t *data, size_t size, char *reply, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        abort();
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a))
        abort(); /* the server stopped listening */
    for (size_t done = 0; done < size;) {
        ssize_t n = send(fd, data + done, size - done, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may close early (e.g. 413): not an error */
        done += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    size_t got = 0;
    for (;;) {
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        size_t keep = (size_t)n < cap - got ? (size_t)n : cap - got;
        memcpy(reply + got, buf, keep);
        got += keep;
    }
    close(fd);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int port = server_port();
    char reply[16];
    size_t got = exchange(port, data, size, reply, sizeof reply);
    if (got > 0 && (got < 9 || (memcmp(reply, "HTTP/1.1 ", 9) && memcmp(reply, "HTTP/1.0 ", 9))))
        abort(); /* bytes that are not an HTTP answer */
    return 0;
}
