/* clock — see clock.h. */
#include "clock.h"

#include <time.h>

long long clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int clock_left_ms(long long deadline, int lo, int hi)
{
    long long left = deadline - clock_ms();
    return left < lo ? lo : left > hi ? hi : (int)left;
}
