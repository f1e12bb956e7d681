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
int pn_cmd_evaluate(int argc, char **argv);
int pn_cmd_predict(int argc, char **argv);
int pn_cmd_data(int argc, char **argv);
int pn_cmd_serve(int argc, char **argv);

#endif
