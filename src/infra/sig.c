/* sig — see sig.h. */
#include "sig.h"

static volatile sig_atomic_t caught;
static volatile pid_t forward_pid;
static int depth;

static const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };

static void on_signal(int sig)
{
    caught = sig;
    if (forward_pid > 0)
        kill(forward_pid, SIGTERM);
}

void sig_catch(sig_scope *s)
{
    s->outer = depth++ == 0;
    if (s->outer) {
        caught = 0;
        forward_pid = 0;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, &s->old[i]);
}

void sig_release(sig_scope *s)
{
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &s->old[i], NULL);
    if (depth > 0)
        depth--;
    if (s->outer) {
        caught = 0;
        forward_pid = 0;
    }
}

bool sig_active(void)
{
    return depth > 0;
}

int sig_caught(void)
{
    return depth > 0 ? (int)caught : 0;
}

const volatile sig_atomic_t *sig_flag(void)
{
    return &caught;
}

void sig_forward_to(pid_t pid)
{
    forward_pid = pid;
}
