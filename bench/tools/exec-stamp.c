/* Prints CLOCK_MONOTONIC in nanoseconds ("exec-ns=N") on stderr, then execs its arguments:
 * the time a benchmark measures from here is the program's own start-up, without the
 * fork/exec cost of the process that launched it. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: exec-stamp PROGRAM [ARGS...]\n");
        return 2;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    fprintf(stderr, "exec-ns=%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    fflush(stderr);
    execv(argv[1], argv + 1);
    perror("execv");
    return 127;
}
