/*
 * init.c: PID 1 of the dynostats hardware-suite guest (scripts/pmu-guest).
 *
 * run_guest.sh packs this program, built static for aarch64, as /init of an
 * initramfs, beside the program under test (/guest/prog), its arguments
 * (/guest/argv) and its extra environment (/guest/envp), both lists of
 * NUL-terminated strings. This init:
 *
 *   1. mounts /proc (read-write: the hardware tests write the sysctl
 *      kernel.perf_user_access), /sys, /dev and a tmpfs on /tmp;
 *   2. makes sure fds 0-2 are the console, where the kernel did not;
 *   3. runs /guest/prog in /guest, and waits for it, reaping any orphan
 *      re-parented to PID 1 meanwhile (tests fork and re-run themselves);
 *   4. prints "DYNOSTATS_GUEST_STATUS=<n>" on the console (the exit code,
 *      or 128 + the signal that killed it), which run_guest.sh turns into
 *      its own exit status, and powers the machine off.
 *
 * Build: aarch64-linux-gnu-gcc -O2 -static -o init init.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Most strings of one list: more is an error, not a silent cut. */
#define MAX_STRINGS 512

static void finish(int status)
{
    printf("DYNOSTATS_GUEST_STATUS=%d\n", status);
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}

/*
 * Reads a list of NUL-terminated strings into list[first..], NULL after the
 * last. A missing file is an empty list. Returns the number read, or -1.
 */
static int read_list(const char *path, char **list, int first)
{
    int n = first;
    FILE *f = fopen(path, "re");
    if (!f) {
        list[n] = NULL;
        return errno == ENOENT ? 0 : -1;
    }
    char *s = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getdelim(&s, &cap, '\0', f)) > 0) {
        if (n >= MAX_STRINGS - 1) {
            fclose(f);
            return -1;
        }
        list[n++] = strdup(s);
    }
    free(s);
    fclose(f);
    list[n] = NULL;
    return n - first;
}

static void mount_or_say(const char *fs, const char *dir, unsigned long flags)
{
    mkdir(dir, 0755);
    if (mount(fs, dir, fs, flags, NULL) != 0 && errno != EBUSY)
        printf("init: mount %s on %s: %s\n", fs, dir, strerror(errno));
}

int main(void)
{
    /* Without /dev/console in the initramfs the kernel leaves fds 0-2
     * closed: open the console once devtmpfs is there. */
    mount_or_say("devtmpfs", "/dev", 0);
    if (fcntl(STDOUT_FILENO, F_GETFD) < 0) {
        int fd = open("/dev/console", O_RDWR | O_NOCTTY);
        if (fd >= 0) {
            for (int i = 0; i < 3; i++)
                if (fd != i)
                    dup2(fd, i);
            if (fd > 2)
                close(fd);
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    mount_or_say("proc", "/proc", 0);
    mount_or_say("sysfs", "/sys", 0);
    mount_or_say("tmpfs", "/tmp", MS_NOSUID | MS_NODEV);
    chmod("/tmp", 01777);

    static char *argv[MAX_STRINGS], *envp[MAX_STRINGS];
    if (read_list("/guest/argv", argv, 0) < 0) {
        printf("init: cannot read /guest/argv (or more than %d arguments)\n", MAX_STRINGS - 1);
        finish(125);
    }
    if (argv[0] == NULL) {
        argv[0] = "prog";
        argv[1] = NULL;
    }
    envp[0] = "PATH=/guest:/usr/bin:/bin";
    envp[1] = "HOME=/tmp";
    envp[2] = "TERM=dumb";
    if (read_list("/guest/envp", envp, 3) < 0) {
        printf("init: cannot read /guest/envp (or more than %d variables)\n", MAX_STRINGS - 4);
        finish(125);
    }
    if (chdir("/guest") != 0)
        printf("init: chdir /guest: %s\n", strerror(errno));

    pid_t child = fork();
    if (child < 0) {
        printf("init: fork: %s\n", strerror(errno));
        finish(125);
    }
    if (child == 0) {
        execve("/guest/prog", argv, envp);
        printf("init: execve /guest/prog: %s\n", strerror(errno));
        _exit(127);
    }
    for (;;) {
        int st;
        pid_t done = wait(&st);
        if (done < 0 && errno == EINTR)
            continue;
        if (done < 0) {
            printf("init: wait: %s\n", strerror(errno));
            finish(125);
        }
        if (done != child)
            continue; /* an orphan of the program */
        if (WIFEXITED(st))
            finish(WEXITSTATUS(st));
        if (WIFSIGNALED(st))
            finish(128 + WTERMSIG(st));
    }
}
