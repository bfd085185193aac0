# ack.gp: the chart of tests/bench/ack (gnuplot).  Bars of requests/s
# and of the p99 latency per backend, from the item-event rows.
#
# gnuplot -e "datafile='F'; outfile='O.png'; heading='TEXT'" ack.gp
# The data file has one line per backend: "NAME" REQUESTS/S P99_MS.

if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1200,600 font "sans,10"
} else {
    set terminal png size 1200,600
}
set output outfile
set multiplot layout 1,2 title heading noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.8
set grid ytics
set yrange [0:*]
set xtics rotate by -30 noenhanced nomirror
set key off
set bmargin 6

set title "requests/s (higher is better)"
plot datafile using 2:xticlabels(1) linecolor rgb "#3b75af", \
     '' using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.7 notitle

set title "p99 latency, ms (lower is better)"
plot datafile using 3:xticlabels(1) linecolor rgb "#c8553d", \
     '' using 0:3:(sprintf("%.1f", $3)) with labels offset 0,0.7 notitle

unset multiplot
