package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"
)

// CompletionFlag prints the command's shell completion script (bash or zsh)
// and exits 0. The script only hands the command line back to the command
// (COMP_LINE), which completes it from its own kong model: flags,
// subcommands and enum values never drift from what the command accepts.
type CompletionFlag string

// BeforeReset prints the script as soon as kong sees the flag.
func (CompletionFlag) BeforeReset(app *kong.Kong, kctx *kong.Context) error {
	for _, el := range kctx.Path {
		if el.Flag == nil || el.Flag.Name != "completion" {
			continue
		}
		shell := fmt.Sprint(kctx.FlagValue(el.Flag))
		if err := CompletionScript(app.Stdout, app.Model.Name, shell); err != nil {
			return err
		}
		app.Exit(0)
	}
	return nil
}

// CompletionScript writes the completion script of command name for shell.
func CompletionScript(w io.Writer, name, shell string) error {
	var script string
	switch shell {
	case "bash":
		script = bashScript
	case "zsh":
		script = zshScript
	default:
		return fmt.Errorf("%w: --completion %q: bash or zsh", ErrUsage, shell)
	}
	fn := "_" + strings.ReplaceAll(name, "-", "_")
	_, err := io.WriteString(w, strings.NewReplacer("@NAME@", name, "@FN@", fn).Replace(script))
	return err
}

// The bash script passes the line up to the cursor to the command, one
// candidate a line; nothing offered falls back to file names.
const bashScript = `# bash completion for @NAME@ (@NAME@ --completion bash)
@FN@() {
	local IFS=$'\n'
	COMPREPLY=($(COMP_LINE="${COMP_LINE:0:COMP_POINT}" COMP_POINT="$COMP_POINT" "$1" 2>/dev/null))
}
complete -o default -F @FN@ @NAME@
`

// The zsh script works autoloaded from a site-functions directory (as
// _NAME) and sourced (source <(NAME --completion zsh), after compinit).
const zshScript = `#compdef @NAME@
# zsh completion for @NAME@ (@NAME@ --completion zsh)
@FN@() {
	local line="${(j: :)words[1,CURRENT]}"
	local -a reply
	reply=(${(f)"$(COMP_LINE="$line" COMP_POINT=${#line} ${words[1]} 2>/dev/null)"})
	if (( ${#reply} )); then
		compadd -Q -- "${reply[@]}"
	else
		_files
	fi
}
if [[ "${funcstack[1]}" = "_@NAME@" ]]; then
	@FN@ "$@"
else
	compdef @FN@ @NAME@
fi
`

// completeLine answers a shell's completion request (COMP_LINE in the
// environment) from the parser's model, with preds for the values tagged
// predictor:"NAME". Errors are silent: a completion prints nothing then.
func completeLine(parser *kong.Kong, preds map[string]complete.Predictor) {
	cmd, err := kongplete.Command(parser, kongplete.WithPredictors(preds),
		kongplete.WithPredictor("shell", complete.PredictSet("bash", "zsh")))
	if err != nil {
		return
	}
	c := complete.New(parser.Model.Name, cmd)
	c.Out = os.Stdout
	c.Complete()
}
