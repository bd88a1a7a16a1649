#include <stdio.h>

int main(void) {
    printf("hello from a hermetic build\n");
    return 0;
}
