"""Help texts of the interactive chat (printed on stderr)."""

from __future__ import annotations

COMMANDS = """\
Commands:
  /set            Change a session setting (/? set for the list)
  /show           Describe the model (/? show for the list)
  /load <model>   Switch to another model (the conversation starts over)
  /save <model>   Save this conversation and its settings as a new model
  /clear          Forget the conversation so far
  /bye            Leave (also /exit or Ctrl + d)
  /?, /help       This help; /? <command> for more
  /? shortcuts    Line editing keys

Start and end a message with \"\"\" to write it over several lines.
"""

IMAGES = "Name a .jpg, .png or .webp file by its path to show it to the model.\n"

SET = """\
/set commands:
  /set parameter <name> <value>   Set a model parameter (/set parameter for the list)
  /set system <text>              Set the system message (\"\"\" for several lines)
  /set history | nohistory        Keep or stop keeping input history
  /set wordwrap | nowordwrap      Wrap answers at word boundaries, or not
  /set format json | noformat     Ask for JSON answers, or free text
  /set verbose | quiet            Print timing statistics after each answer, or not
  /set think [level] | nothink    Ask the model to think first, or not
"""

SHOW = """\
/show commands:
  /show info         Summary of the model
  /show license      The model's license
  /show modelfile    A Modelfile that rebuilds the model
  /show parameters   The model's parameters and the ones set in this session
  /show system       The system message
  /show template     The prompt template
"""

PARAMETERS = """\
Common parameters:
  /set parameter seed <int>              Random seed (same seed, same answer)
  /set parameter num_predict <int>       Most tokens to generate
  /set parameter top_k <int>             Sample among the k likeliest tokens
  /set parameter top_p <float>           Sample among tokens up to this total probability
  /set parameter min_p <float>           Drop tokens below this share of the likeliest one
  /set parameter num_ctx <int>           Context window in tokens
  /set parameter temperature <float>     Randomness (0 always picks the likeliest token)
  /set parameter repeat_penalty <float>  Penalty for repeating recent tokens
  /set parameter repeat_last_n <int>     How many recent tokens count as repeats
  /set parameter num_gpu <int>           Layers to place on the GPU
  /set parameter stop <text> <text> ...  Stop generating at any of these texts
"""

SHORTCUTS = """\
Line editing:
  Ctrl + a / Ctrl + e   Go to the start / end of the line
  Alt + b / Alt + f     Go back / forward one word
  Ctrl + k / Ctrl + u   Delete to the end / start of the line
  Ctrl + w              Delete the word before the cursor
  Ctrl + l              Clear the screen
  Up / Down             Walk through earlier input
  Ctrl + c              Stop the answer being written
  Ctrl + d              Leave (like /bye)
"""
