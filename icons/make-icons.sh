#!/usr/bin/env bash
# Draws Clawdock's app and tray icons with ImageMagick. The committed PNGs are its
# output; run it again only to change the artwork.
# Tray glyph: a dark-outlined white "dock" (a rounded box with three containers) so it
# reads on light and dark bars, plus a status dot whose colour is the state. The
# *-template.png variants are black-on-alpha for macOS template images.
set -euo pipefail
cd "$(dirname "$0")"
glyph() { # size outline fill
  local s=$1 o=$2 f=$3 w=$(( $1 / 16 + 1 ))
  echo "-strokewidth $w -stroke $o -fill $f -draw \"roundrectangle $((s/16)),$((s*5/16)) $((s*13/16)),$((s*14/16)) $((s/10)),$((s/10))\" -fill $o -stroke none -draw \"rectangle $((s*3/16)),$((s*7/16)) $((s*5/16)),$((s*12/16))\" -draw \"rectangle $((s*6/16)),$((s*7/16)) $((s*8/16)),$((s*12/16))\" -draw \"rectangle $((s*9/16)),$((s*7/16)) $((s*11/16)),$((s*12/16))\""
}
tray() { # name colour
  local s=64 d=$3
  eval convert -size ${s}x${s} xc:none $(glyph $s '"#1f2328"' white) \
    -stroke '"#1f2328"' -strokewidth 4 -fill "'$2'" -draw "'circle 50,16 50,$((16 + d))'" "tray-$1.png"
  eval convert -size ${s}x${s} xc:none $(glyph $s black none) \
    -stroke black -strokewidth 4 -fill "'$4'" -draw "'circle 50,16 50,$((16 + d))'" "tray-$1-template.png"
}
tray missing '#8c959f' 10 none
tray absent '#8c959f' 10 none
tray stopped '#8c959f' 12 black
tray starting '#d4a72c' 12 black
tray ready '#2da44e' 12 black
tray error '#cf222e' 12 black
tray stopping '#d4a72c' 12 none
app() { # size file
  local s=$1
  eval convert -size ${s}x${s} xc:none -fill "'#0b4f6c'" -draw "'roundrectangle 0,0 $((s-1)),$((s-1)) $((s/5)),$((s/5))'" \
    $(glyph $s '"#0b4f6c"' white) "$2"
}
app 32 32x32.png; app 128 128x128.png; app 256 128x128@2x.png; app 512 icon.png
convert icon.png -define icon:auto-resize=256,128,64,48,32,16 icon.ico
