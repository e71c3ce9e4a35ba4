#!/bin/sh
# Makes src/http_web_assets.c (on stdout) from the web page's files:
#   embed.sh SRCDIR FILE...      (FILE relative to SRCDIR, e.g. web/app.js)
# Each file becomes a byte array (od: any byte, any line length), with its
# Content-Type by suffix and an ETag from POSIX cksum (CRC and length), so
# a rebuilt page is fetched again and an unchanged one answers 304.
set -e
srcdir=$1
shift
echo '/* Made from web/ by web/embed.sh (Makefile.am): do not edit. */'
echo '#include "mailsnare/http_web.h"'
n=0
for f in "$@"; do
	echo "static const unsigned char web_$n[] = {"
	od -An -v -tx1 "$srcdir/$f" | sed 's/[0-9a-f][0-9a-f]/0x&,/g'
	echo '0x00 };'
	n=$((n + 1))
done
echo 'const struct http_web_asset http_web_assets[] = {'
n=0
for f in "$@"; do
	case $f in
	*.html) ctype='text/html; charset=utf-8' ;;
	*.js) ctype='text/javascript; charset=utf-8' ;;
	*.css) ctype='text/css; charset=utf-8' ;;
	*.svg) ctype='image/svg+xml' ;;
	*.png) ctype='image/png' ;;
	*) ctype='application/octet-stream' ;;
	esac
	sum=$(cksum < "$srcdir/$f" | awk '{ print $1 "-" $2 }')
	echo "	{ \"${f##*/}\", \"$ctype\", \"\\\"$sum\\\"\", web_$n, sizeof(web_$n) - 1 },"
	n=$((n + 1))
done
echo '};'
echo 'const size_t http_web_assets_count = sizeof(http_web_assets) / sizeof(http_web_assets[0]);'
