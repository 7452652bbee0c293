module anom

go 1.26
