/* running — see running.h. */
#include "running.h"

#include "../base/cleanup.h"
#include "layout.h"

int running_not(const config *cfg, const char *name, const char *start_args, qq_err *err)
{
    return qq_fail(err, QQ_EXIT_FAIL, "%s is not running (start it: %s start %s%s%s)", name, config_cli(cfg), name,
                   start_args ? " " : "", start_args ? start_args : "");
}

int running_require(const config *cfg, const char *name, pid_t *pid, char **state_dir, qq_err *err)
{
    if (config_check_vm(cfg, name, err) < 0)
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    pid_t holder = layout_pid_holder(dir);
    if (holder <= 0)
        return running_not(cfg, name, NULL, err);
    if (pid)
        *pid = holder;
    if (state_dir)
        *state_dir = TAKE_PTR(dir);
    return 0;
}
