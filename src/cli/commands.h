/* One function per subcommand, each in its own src/cli/cmd_*.c file.
 * argv[0] is the subcommand name; the return value is the process exit code. */
#ifndef PNEUMO_CLI_COMMANDS_H
#define PNEUMO_CLI_COMMANDS_H

typedef struct pn_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} pn_command;

/* Subcommands (keep in the order `pneumo help` lists them). */
int pn_cmd_arch(int argc, char **argv);
int pn_cmd_audit(int argc, char **argv);
int pn_cmd_bench(int argc, char **argv);
int pn_cmd_train(int argc, char **argv);
int pn_cmd_cv(int argc, char **argv);
int pn_cmd_evaluate(int argc, char **argv);
int pn_cmd_predict(int argc, char **argv);
int pn_cmd_export(int argc, char **argv);
int pn_cmd_ood(int argc, char **argv);
int pn_cmd_data(int argc, char **argv);
int pn_cmd_serve(int argc, char **argv);
/* pneumo data convert (cmd_data_convert.c), run by pn_cmd_data. */
int pn_cmd_data_convert(int argc, char **argv);

/* pneumo train's options (shared by cv): parses argv and recipe files into
 * a copy of defaults, runs run() on it, frees what the recipe kept; the exit code. */
struct pn_train_config;
struct pn_train_progress;
int pn_cli_train_main(int argc, char **argv, struct pn_train_config defaults,
                      int (*run)(const struct pn_train_config *c));
void pn_cli_train_progress(void *user, const struct pn_train_progress *p);
/* Fits and stores the out-of-distribution gate of a model file trained on
 * data (train and cv call it on what they write), printing each member's
 * report; when it cannot (e.g. too few held-out images) a warning says so
 * and the model keeps only the image checks. */
void pn_cli_ood_fit(const char *model, const char *data, int threads);
/* Installs the SIGINT and SIGUSR1 handlers (mpirun forwards SIGUSR1 to
 * every process); the flag they set. */
volatile int *pn_cli_stop_flag(void);
/* train_dist.c: the process group an MPI launcher started this process in
 * (the single process otherwise); on failure prints why and returns NULL.
 * In a group, SIGTERM from the runtime is answered with a message. */
struct pn_dist;
struct pn_dist *pn_cli_dist_open(const char *prog, double timeout_s);
/* Prints msg (with this rank in a group) and ends the job; in one process
 * it returns, having closed d. */
void pn_cli_dist_fail(struct pn_dist *d, const char *prog, const char *msg);

#endif
