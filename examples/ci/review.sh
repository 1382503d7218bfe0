#!/usr/bin/env bash
# Reviewing and applying a stack change in any CI, or by hand: the steps of
# examples/ci/vlaninfra.yml (the GitHub Actions workflow), in the same order.
#
#   examples/ci/review.sh review STACK   a proposed change (a pull request): set-up,
#                                        `vlaninfra plan` (validate), `pulumi preview`, and the
#                                        change in network terms (`vlaninfra diff`) as a comment
#   examples/ci/review.sh apply STACK    a merged change: set-up, `vlaninfra up --yes` (preview,
#                                        apply, verify through the hosts; rolls back on failure)
#
# It acts on the Pulumi project of the current directory (the repository's root, or any project
# with a stacks/ directory), with the set-up, engine and virtualenv of the checkout holding this
# script. The state backend and its credentials come from the environment only
# (PULUMI_BACKEND_URL, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE,
# PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE; README "State backend"): nothing
# here prints them. The comment is written to $VLANINFRA_COMMENT (default
# vlaninfra-review-STACK.md); in GitHub Actions (GITHUB_ACTIONS=true) with GH_TOKEN and
# PR_NUMBER set it is also posted on the pull request with `gh pr comment`.
# Exit status: 0 done; 1 a step failed (its output is shown); 2 wrong usage.
set -euo pipefail

usage() { echo "usage: $0 review|apply STACK" >&2; exit 2; }
[ $# -eq 2 ] || usage
mode=$1 stack=$2
case "$mode" in review|apply) ;; *) usage ;; esac
checkout=$(cd "$(dirname "$0")/../.." && pwd)
step() { echo "==> $*" >&2; }

step "set-up: tools/setup.sh"
"$checkout/tools/setup.sh" >&2
export PATH="$checkout/.engine/bin:$checkout/.venv/bin:$PATH"

if [ "$mode" = apply ]; then
  step "vlaninfra up --stack $stack --yes"
  exec vlaninfra up --stack "$stack" --yes
fi

step "vlaninfra plan --stack $stack"
vlaninfra plan --stack "$stack"

step "pulumi preview --stack $stack"
preview=$(mktemp)
trap 'rm -f "$preview"' EXIT
# tools/pulumi, run in this project: the project's defaults and refusals (README "State backend").
if ! python -m vlaninfra.engine exec preview --suppress-outputs --non-interactive \
    --stack "$stack" > "$preview" 2>&1; then
  cat "$preview" >&2
  exit 1
fi
cat "$preview"

comment=${VLANINFRA_COMMENT:-vlaninfra-review-$stack.md}
step "vlaninfra diff --stack $stack --format markdown > $comment"
vlaninfra diff --stack "$stack" --format markdown > "$comment"
{
  printf '\n<details><summary>pulumi preview of stack %s</summary>\n\n```text\n' "$stack"
  tail -c 40000 "$preview"  # a comment holds at most 65,536 characters
  printf '```\n\n</details>\n'
} >> "$comment"

if [ "${GITHUB_ACTIONS:-}" = true ] && [ -n "${GH_TOKEN:-}" ] && [ -n "${PR_NUMBER:-}" ]; then
  step "posting $comment on pull request #$PR_NUMBER"
  gh pr comment "$PR_NUMBER" --body-file "$comment"
else
  step "comment written to $comment (not posted: no hosted CI with GH_TOKEN and PR_NUMBER)"
fi
