/* bench/floor: what one read and one write of a Twilio-sized media frame cost on
 * loopback on this machine, with nothing else — the floor under the gateway's per-frame
 * figure. An echo thread (pinned to core 1) serves N connections with epoll, reading one
 * 372-byte frame and writing it back; a pacer (core 0) sends each connection a frame every
 * 20 ms and reads the echoes. The echo thread's own CPU time is divided by the frames.
 *
 *   bench_floor [connections=1000] [seconds=10]
 * prints: floor conns=N frames=F us_per_frame=X read_us=R write_us=W */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME 372 /* a media message with a 160-byte payload, framed */

static int nconn = 1000;
static double seconds = 10;
static int listen_fd;
static atomic_bool stop;
static atomic_long frames;
static double read_ns_total, write_ns_total;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static double *cpu_out;

static void *echo_main(void *arg)
{
    (void)arg;
    pin(1);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listen_fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);
    struct epoll_event evs[256];
    char buf[65536];
    double cpu0 = -1;
    long f0 = 0;
    while (!atomic_load(&stop)) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == listen_fd) {
                int c = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK);
                int one = 1;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                continue;
            }
            double t0 = now_s();
            ssize_t k = read(fd, buf, sizeof buf);
            double t1 = now_s();
            if (k <= 0) continue;
            ssize_t w = write(fd, buf, (size_t)k);
            double t2 = now_s();
            (void)w;
            read_ns_total += t1 - t0;
            write_ns_total += t2 - t1;
            atomic_fetch_add(&frames, k / FRAME);
        }
        /* measure once every connection is up */
        if (cpu0 < 0 && atomic_load(&frames) > nconn * 10) {
            cpu0 = thread_cpu_s();
            f0 = atomic_load(&frames);
            read_ns_total = write_ns_total = 0;
        }
    }
    double cpu = thread_cpu_s() - cpu0;
    long f = atomic_load(&frames) - f0;
    cpu_out[0] = cpu;
    cpu_out[1] = (double)f;
    close(ep);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) nconn = atoi(argv[1]);
    if (argc > 2) seconds = atof(argv[2]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(listen_fd, (struct sockaddr *)&a, sizeof a);
    listen(listen_fd, 4096);
    getsockname(listen_fd, (struct sockaddr *)&a, &len);
    double result[2];
    cpu_out = result;
    pthread_t echo;
    pthread_create(&echo, NULL, echo_main, NULL);

    pin(0);
    int *fds = calloc((size_t)nconn, sizeof *fds);
    for (int i = 0; i < nconn; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fds[i], (struct sockaddr *)&a, sizeof a) < 0) {
            perror("connect");
            return 1;
        }
        int one = 1;
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
    }
    char frame[FRAME], sink[65536];
    memset(frame, 'x', sizeof frame);
    double start = now_s();
    for (long tick = 0; now_s() - start < seconds; tick++) {
        /* every connection sends one frame per 20 ms, spread over the tick */
        double due = start + (double)tick * 0.020;
        while (now_s() < due) {
            for (int i = 0; i < nconn; i++) (void)!read(fds[i], sink, sizeof sink);
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        for (int i = 0; i < nconn; i++) (void)!write(fds[i], frame, sizeof frame);
    }
    atomic_store(&stop, true);
    pthread_join(echo, NULL);
    double us = result[0] * 1e6 / result[1];
    printf("floor conns=%d frames=%.0f us_per_frame=%.2f read_us=%.2f write_us=%.2f\n", nconn,
           result[1], us, read_ns_total * 1e6 / result[1], write_ns_total * 1e6 / result[1]);
    return 0;
}
