module sealroom.example/go-app

go 1.19

require example.internal/greet v1.0.0

require example.internal/Upper v1.0.0 // indirect
