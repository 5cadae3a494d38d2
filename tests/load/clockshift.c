/*
 * Wall-clock jumps for the fault tests (LD_PRELOAD into the bot's process only).
 *
 * Adds the whole seconds written in the file $CLOCKSHIFT_FILE (re-read at most every
 * 100 ms) to CLOCK_REALTIME, gettimeofday() and time(); the monotonic clocks and every
 * sleep are left alone, as an NTP step leaves them. libfaketime does the same in
 * principle, but its 0.9.10 (Debian 12) breaks Python 3.11's time.sleep when the
 * monotonic clock is excluded (clock_nanosleep with TIMER_ABSTIME fails with EINVAL).
 *
 * Built by tests/load/events.py: cc -shared -fPIC -O2 -o clockshift.so clockshift.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static _Atomic long shift_seconds;
static _Atomic long next_read_ns;

static clock_gettime_fn real_clock_gettime(void) {
    static _Atomic(clock_gettime_fn) found;
    clock_gettime_fn function = atomic_load(&found);
    if (function == NULL) {
        function = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
        atomic_store(&found, function);
    }
    return function;
}

static long current_shift(void) {
    struct timespec now;
    real_clock_gettime()(CLOCK_MONOTONIC, &now);
    long now_ns = now.tv_sec * 1000000000L + now.tv_nsec;
    if (now_ns >= atomic_load(&next_read_ns)) {
        atomic_store(&next_read_ns, now_ns + 100000000L);
        const char *path = getenv("CLOCKSHIFT_FILE");
        FILE *file = path != NULL ? fopen(path, "r") : NULL;
        if (file != NULL) {
            long seconds;
            if (fscanf(file, "%ld", &seconds) == 1) {
                atomic_store(&shift_seconds, seconds);
            }
            fclose(file);
        }
    }
    return atomic_load(&shift_seconds);
}

int clock_gettime(clockid_t clock, struct timespec *now) {
    int result = real_clock_gettime()(clock, now);
    if (result == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) {
        now->tv_sec += current_shift();
    }
    return result;
}

int gettimeofday(struct timeval *restrict now, void *restrict zone) {
    (void)zone;
    struct timespec precise;
    int result = clock_gettime(CLOCK_REALTIME, &precise);
    if (result == 0) {
        now->tv_sec = precise.tv_sec;
        now->tv_usec = precise.tv_nsec / 1000;
    }
    return result;
}

time_t time(time_t *out) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (out != NULL) {
        *out = now.tv_sec;
    }
    return now.tv_sec;
}
