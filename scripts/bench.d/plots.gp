# plots.gp: the benchmark's PNG plots, drawn from the .dat files report.py writes (run in build/bench).
file_ok(f) = system("test -s " . f . " && echo 1 || echo 0") eq "1"

set terminal pngcairo size 900,520 font "sans,10" noenhanced
set bmargin 5
set grid ytics
set border 3
set xtics nomirror
set ytics nomirror
set style fill solid 0.8 border -1
set boxwidth 0.6

if (file_ok("throughput.dat")) {
  set output "throughput.png"
  set title "Scenario 1: throughput at latency 0 (events/s; wrk: requests/s)"
  set ylabel "per second"
  set yrange [0:*]
  set xtics scale 0
  plot "throughput.dat" using 0:2:xtic(1) with boxes lc rgb "#4477aa" notitle, \
       "" using 0:2:(sprintf("%.0f", $2)) with labels offset 0,1 notitle
  unset output
}

if (file_ok("cpu.dat")) {
  set output "cpu.png"
  set title "Scenario 1 (mixed): CPU microseconds per event, by process"
  set ylabel "CPU us per event"
  set yrange [0:*]
  plot "cpu.dat" using 0:2:xtic(1) with boxes lc rgb "#cc6677" notitle, \
       "" using 0:2:(sprintf("%.0f", $2)) with labels offset 0,1 notitle
  unset output
}

if (file_ok("scaling.dat")) {
  set output "scaling.png"
  set title "Scenario 4: throughput vs max_in_flight at 20 ms latency"
  set logscale xy
  set xlabel "max_in_flight"
  set ylabel "events/s"
  set xrange [0.7:800]
  set yrange [10:*]
  set xtics (1, 8, 64, 512)
  set key top left
  plot "scaling.dat" using 1:3 with linespoints lw 2 dt 2 lc rgb "#999999" title "bound: max_in_flight / 20 ms", \
       "" using 1:2 with linespoints lw 2 pt 7 lc rgb "#4477aa" title "measured", \
       "" using 1:2:(sprintf("%.0f", $2)) with labels offset 0,1 notitle
  unset output
  unset logscale
  unset xlabel
  unset xrange
  set xtics autofreq
}

if (file_ok("stages.dat")) {
  set output "stages.png"
  set title "Scenario 5: instructions per event by stage (callgrind)"
  set ylabel "instructions per event"
  set yrange [0:*]
  set xtics scale 0 rotate by -30
  plot "stages.dat" using 0:2:xtic(1) with boxes lc rgb "#228833" notitle, \
       "" using 0:2:(sprintf("%.0fk", $2 / 1000)) with labels offset 0,1 notitle
  unset output
}
