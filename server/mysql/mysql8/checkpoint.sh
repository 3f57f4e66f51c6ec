# shellcheck shell=bash
: # MySQL recovers a crashed source by committing its binlogged transactions: nothing to do
