#!/usr/bin/env python3
"""Assembles the decoder and SSE fixtures with GNU as and disassembles them with objdump.

Writes AssembledFixtures.swift next to this script: for each snippet line, the bytes `as` chose
and objdump's Intel-syntax text. Run it again after editing the snippet lists; a test compares
the committed file with a fresh run whenever `as` and `objdump` are installed.

Usage: generate-fixtures.py [--check]   (--check prints the would-be file to stdout)
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "AssembledFixtures.swift")

# ---------------------------------------------------------------------------------------------
# 64-bit mode: addressing forms, immediates, prefixes, and the instructions the emulator handles.
LONG64 = """
nop
add eax, ebx
add rax, qword ptr [rbx]
add rax, qword ptr [rbx+8]
add rax, qword ptr [rbx+0x12345678]
add rax, qword ptr [rsp]
add rax, qword ptr [rsp+8]
add rax, qword ptr [rbp]
add rax, qword ptr [r12]
add rax, qword ptr [r13]
add rax, qword ptr [r13+0x100]
add rax, qword ptr [rax+rbx*4]
add rax, qword ptr [rax+r12*8+0x10]
add rax, qword ptr [rbp+rsi*2-0x80]
add rax, qword ptr [rip+0x1234]
add rax, qword ptr ds:0x12345678
add rax, qword ptr [r8*4+0x10]
add r15, qword ptr [r15+r15*1]
mov eax, dword ptr fs:[rax]
mov rax, qword ptr gs:0x28
lea rax, [eax+ebx]
lea eax, [eip+0x10]
mov al, 0x12
mov ax, 0x1234
mov eax, 0x12345678
movabs rax, 0x1122334455667788
mov r9b, 0x7f
mov word ptr [rax], 0x1234
mov dword ptr [rax+8], 0x12345678
mov qword ptr [rax], -1
add ax, 0x1234
add rax, 0x12345678
add qword ptr [rsp+0x10], 0x7f
imul eax, ebx, 0x12345678
imul eax, ebx, 0x12
imul ax, word ptr [rbx], 0x1234
test byte ptr [rax], 0x12
not byte ptr [rax]
test dword ptr [rax+rbx], 0x12345678
test word ptr [rax], 0x1234
test rax, 0x12345678
neg qword ptr [rax]
shl dword ptr [rax], 5
rol rax, 1
enter 0x10, 1
ret 0x10
ret
leave
push 0x12345678
push 0x12
push qword ptr [rax]
pop r12
movsxd rax, dword ptr [rbx]
mov rax, cr0
mov cr3, rax
mov rax, dr7
mov cr8, rax
in al, 0x60
out 0x80, al
in eax, dx
int 0x80
int3
int1
hlt
syscall
sysretd
sysretq
swapgs
rdtscp
rdpid rax
rdfsbase rax
rdgsbase eax
wrfsbase rbx
wrgsbase r12
clac
stac
xgetbv
xsetbv
endbr64
endbr32
ud2
ud1 eax, dword ptr [rax]
ud0 eax, ecx
fwait
popcnt rax, rcx
popcnt eax, dword ptr [rip+0x10]
popcnt ax, word ptr [rbx]
popcnt r8, qword ptr [r9+r10*4+0x20]
lzcnt rax, rcx
lzcnt ecx, dword ptr [rsp+4]
lzcnt dx, si
tzcnt r9, qword ptr [r10+r11*8]
tzcnt eax, ebx
tzcnt bx, word ptr [rbp-2]
ldmxcsr dword ptr [rsp+4]
stmxcsr dword ptr [rax]
ldmxcsr dword ptr [rip+0x100]
fxsave [rax]
xsave [rcx]
xrstor [rcx]
fld dword ptr [rax]
fadd st, st(1)
fnstsw ax
fninit
movzx eax, byte ptr [rax]
movsx rax, word ptr [rbx+2]
bt dword ptr [rax], 3
bts rax, rbx
shld rax, rbx, 5
shrd eax, ebx, cl
cmpxchg16b xmmword ptr [rax]
cmpxchg8b qword ptr [rbx]
lock cmpxchg dword ptr [rax], ecx
lock add dword ptr [rax], 1
lock xadd qword ptr [rdx], rcx
xchg rax, rbx
xchg dword ptr [rax], ecx
cpuid
rdtsc
rdmsr
wrmsr
rep movsb
rep stosq
repne scasb
movsd
cmpsb
prefetcht0 byte ptr [rax]
nop dword ptr [rax+rax*1+0x0]
nop word ptr cs:[rax+rax*1+0x0]
crc32 eax, byte ptr [rax]
crc32 rax, qword ptr [rbx]
movbe eax, dword ptr [rax]
bswap r11
setne al
cmovne rax, qword ptr [rbx]
sete byte ptr [rax+1]
lgdt [rax]
invlpg byte ptr [rax]
wbinvd
mov byte ptr [rax], al
mov qword ptr ds:0x1122334455667788, rax
movabs al, ds:0x1122334455667788
mov eax, dword ptr [r12+r13*2+0x7ffffff0]
lea r8, [rip-0x80]
cmp byte ptr [rip+0x1000], 0x12
"""

# 32-bit protected mode.
PROTECTED32 = """
nop
add eax, dword ptr [ebx]
add eax, dword ptr [esp]
add eax, dword ptr [ebp]
add eax, dword ptr [ebp+0x10]
add eax, dword ptr [eax+ebx*4+0x12345678]
add eax, dword ptr ds:0x12345678
add eax, dword ptr [ecx*8]
mov ax, word ptr [bx+si]
mov eax, dword ptr [bp+0x10]
mov ax, 0x1234
mov eax, 0x12345678
push es
pop es
push cs
daa
aam 0x10
aad 0x0a
into
pusha
popa
les eax, [eax]
lds ecx, [ebx+4]
bound eax, qword ptr [ecx]
jmp 0x10:0x12345678
call 0x10:0x12345678
mov al, byte ptr ds:0x12345678
mov eax, dword ptr ds:0x12345678
mov eax, dword ptr fs:[eax]
popcnt eax, dword ptr [esp+8]
popcnt ax, bx
lzcnt eax, dword ptr [ebx]
tzcnt ecx, edx
ldmxcsr dword ptr [esp]
stmxcsr dword ptr [ebp-4]
int3
clac
stac
fwait
endbr32
rdtscp
rdpid eax
ud2
inc eax
dec ecx
push 0x12345678
imul eax, dword ptr [eax], 0x7f
pxor xmm1, xmm7
pxor xmm1, xmmword ptr [eax+0x10]
movdqa xmmword ptr [esp], xmm3
movd xmm2, eax
movd dword ptr [ebx], xmm5
pshufd xmm0, xmmword ptr [ecx], 0x1b
"""

# 16-bit code (real mode).
REAL16 = """
nop
mov ax, word ptr [bx+si]
mov ax, word ptr [bx+di]
mov ax, word ptr [bp+si]
mov ax, word ptr [bp+di]
mov ax, word ptr [si]
mov ax, word ptr [di]
mov ax, word ptr ds:0x1234
mov ax, word ptr [bx]
mov ax, word ptr [bp]
mov ax, word ptr [bx+si+0x10]
mov ax, word ptr [bp+di-0x10]
mov ax, word ptr [bx+0x1234]
mov ax, word ptr [bp+0x1234]
mov eax, dword ptr [ebx+ecx*4]
mov eax, dword ptr [esp+8]
mov eax, 0x12345678
mov ax, 0x1234
add ax, 0x1234
add eax, 0x12345678
push 0x1234
jmp 0x1000:0x1234
call 0x1000:0x1234
int 0x10
int3
mov al, byte ptr ds:0x1234
mov ax, word ptr es:[di]
popcnt ax, word ptr [bx+si]
popcnt eax, ecx
lzcnt ax, bx
fwait
ldmxcsr dword ptr [bx]
pxor xmm0, xmmword ptr [bx+si]
enter 0x10, 0
"""

# Every allow-listed SSE form in register and memory shapes (64-bit mode).
SSE64 = """
movups xmm1, xmm9
movups xmm10, xmmword ptr [rax+0x10]
movupd xmm1, xmmword ptr [rax]
movss xmm2, xmm3
movss xmm2, dword ptr [rax]
movsd xmm2, qword ptr [rax]
movups xmmword ptr [rax], xmm4
movupd xmmword ptr [rax], xmm4
movss dword ptr [rax], xmm14
movsd qword ptr [rax], xmm14
movlps xmm1, qword ptr [rax]
movhlps xmm1, xmm2
movlpd xmm1, qword ptr [rax]
movlps qword ptr [rax], xmm1
movlpd qword ptr [rax], xmm1
movhps xmm1, qword ptr [rax]
movlhps xmm1, xmm2
movhpd xmm1, qword ptr [rax]
movhps qword ptr [rax], xmm1
movhpd qword ptr [rax], xmm1
movaps xmm1, xmmword ptr [rax]
movapd xmm1, xmm2
movaps xmmword ptr [rax], xmm1
movapd xmmword ptr [rax], xmm1
movntps xmmword ptr [rax], xmm1
movntpd xmmword ptr [rax], xmm1
movd xmm1, eax
movd xmm1, dword ptr [rax]
movq xmm1, rax
movq xmm9, qword ptr [rax]
movdqa xmm8, xmmword ptr [rip+0x100]
movdqu xmm8, xmmword ptr [rax]
movd eax, xmm1
movd dword ptr [rax], xmm1
movq r10, xmm11
movq xmm1, xmm2
movq xmm1, qword ptr [rax]
movdqa xmmword ptr [rax], xmm15
movdqu xmmword ptr [rax], xmm15
movq qword ptr [rax], xmm3
movntdq xmmword ptr [rax], xmm3
movmskps eax, xmm3
movmskpd r9d, xmm3
pmovmskb ecx, xmm12
pextrw eax, xmm3, 5
pinsrw xmm3, eax, 5
pinsrw xmm3, word ptr [rax], 2
unpcklps xmm1, xmm2
unpcklpd xmm1, xmmword ptr [rax]
unpckhps xmm1, xmm2
unpckhpd xmm1, xmm2
andps xmm1, xmm2
andpd xmm1, xmm2
andnps xmm1, xmm2
andnpd xmm1, xmm2
orps xmm1, xmm2
orpd xmm1, xmm2
xorps xmm1, xmmword ptr [rax]
xorpd xmm1, xmm2
shufps xmm1, xmm2, 0x1b
shufpd xmm1, xmm2, 1
rsqrtps xmm1, xmm2
rsqrtss xmm1, dword ptr [rax]
rcpps xmm1, xmm2
rcpss xmm1, xmm2
ucomiss xmm1, dword ptr [rax]
ucomisd xmm1, xmm2
comiss xmm1, xmm2
comisd xmm1, qword ptr [rax]
cmpps xmm1, xmm2, 0x10
cmppd xmm1, xmm2, 0x10
cmpss xmm1, dword ptr [rax], 0x10
cmpsd xmm1, qword ptr [rax], 0x10
cvtps2pd xmm1, qword ptr [rax]
cvtpd2ps xmm1, xmm2
cvtss2sd xmm1, dword ptr [rax]
cvtsd2ss xmm1, xmm2
cvtdq2ps xmm1, xmm2
cvtps2dq xmm1, xmm2
cvttps2dq xmm1, xmm2
cvttpd2dq xmm1, xmm2
cvtdq2pd xmm1, qword ptr [rax]
cvtpd2dq xmm1, xmm2
cvtsi2ss xmm1, eax
cvtsi2ss xmm1, rax
cvtsi2sd xmm1, dword ptr [rax]
cvtsi2sd xmm1, qword ptr [rax]
cvttss2si eax, xmm1
cvttsd2si rax, qword ptr [rax]
cvtss2si eax, dword ptr [rax]
cvtsd2si r8, xmm1
sqrtps xmm1, xmm2
sqrtpd xmm1, xmm2
sqrtss xmm1, xmm2
sqrtsd xmm1, xmm2
addps xmm1, xmm2
addpd xmm1, xmmword ptr [rax]
addss xmm1, dword ptr [rax]
addsd xmm1, qword ptr [rax]
mulps xmm1, xmm2
mulpd xmm1, xmm2
mulss xmm1, xmm2
mulsd xmm1, xmm2
subps xmm1, xmm2
subpd xmm1, xmm2
subss xmm1, xmm2
subsd xmm1, xmm2
minps xmm1, xmm2
minpd xmm1, xmm2
minss xmm1, xmm2
minsd xmm1, xmm2
divps xmm1, xmm2
divpd xmm1, xmm2
divss xmm1, xmm2
divsd xmm1, xmm2
maxps xmm1, xmm2
maxpd xmm1, xmm2
maxss xmm1, xmm2
maxsd xmm1, xmm2
punpcklbw xmm1, xmm2
punpcklwd xmm1, xmm2
punpckldq xmm1, xmmword ptr [rax]
packsswb xmm1, xmm2
pcmpgtb xmm1, xmm2
pcmpgtw xmm1, xmm2
pcmpgtd xmm1, xmm2
packuswb xmm1, xmm2
punpckhbw xmm1, xmm2
punpckhwd xmm1, xmm2
punpckhdq xmm1, xmm2
packssdw xmm1, xmm2
punpcklqdq xmm1, xmm2
punpckhqdq xmm1, xmm2
pcmpeqb xmm1, xmm2
pcmpeqw xmm1, xmm2
pcmpeqd xmm1, xmm2
psrlw xmm1, xmm2
psrld xmm1, xmm2
psrlq xmm1, xmmword ptr [rax]
paddq xmm1, xmm2
pmullw xmm1, xmm2
psubusb xmm1, xmm2
psubusw xmm1, xmm2
pminub xmm1, xmm2
pand xmm1, xmm2
paddusb xmm1, xmm2
paddusw xmm1, xmm2
pmaxub xmm1, xmm2
pandn xmm1, xmm2
pavgb xmm1, xmm2
psraw xmm1, xmm2
psrad xmm1, xmm2
pavgw xmm1, xmm2
pmulhuw xmm1, xmm2
pmulhw xmm1, xmm2
psubsb xmm1, xmm2
psubsw xmm1, xmm2
pminsw xmm1, xmm2
por xmm1, xmm2
paddsb xmm1, xmm2
paddsw xmm1, xmm2
pmaxsw xmm1, xmm2
pxor xmm1, xmmword ptr [rip+0x1234]
psllw xmm1, xmm2
pslld xmm1, xmm2
psllq xmm1, xmm2
pmuludq xmm1, xmm2
pmaddwd xmm1, xmm2
psadbw xmm1, xmm2
psubb xmm1, xmm2
psubw xmm1, xmm2
psubd xmm1, xmm2
psubq xmm1, xmm2
paddb xmm1, xmm2
paddw xmm1, xmm2
paddd xmm13, xmm14
pshufd xmm1, xmm2, 0x93
pshufhw xmm1, xmmword ptr [rax], 0x1b
pshuflw xmm1, xmm2, 0x1b
psrlw xmm1, 3
psraw xmm1, 3
psllw xmm1, 3
psrld xmm9, 7
psrad xmm1, 3
pslld xmm1, 25
psrlq xmm1, 3
psrldq xmm1, 8
psllq xmm1, 3
pslldq xmm15, 4
movsldup xmm1, xmm2
movshdup xmm1, xmmword ptr [rax]
movddup xmm1, qword ptr [rax]
haddpd xmm1, xmm2
haddps xmm1, xmm2
hsubpd xmm1, xmm2
hsubps xmm1, xmm2
addsubpd xmm1, xmm2
addsubps xmm1, xmm2
lddqu xmm1, [rax]
pshufb xmm1, xmm2
pshufb xmm1, xmmword ptr [rip+0x40]
phaddw xmm1, xmm2
phaddd xmm1, xmm2
phaddsw xmm1, xmm2
pmaddubsw xmm1, xmm2
phsubw xmm1, xmm2
phsubd xmm1, xmm2
phsubsw xmm1, xmm2
psignb xmm1, xmm2
psignw xmm1, xmm2
psignd xmm1, xmm2
pmulhrsw xmm1, xmm2
pabsb xmm1, xmm2
pabsw xmm1, xmm2
pabsd xmm1, xmm2
palignr xmm1, xmm2, 4
palignr xmm11, xmmword ptr [r12+0x10], 12
pblendvb xmm1, xmm2
blendvps xmm1, xmm2
blendvpd xmm1, xmm2
pmuldq xmm1, xmm2
pcmpeqq xmm1, xmm2
packusdw xmm1, xmm2
pminsb xmm1, xmm2
pminsd xmm1, xmm2
pminuw xmm1, xmm2
pminud xmm1, xmm2
pmaxsb xmm1, xmm2
pmaxsd xmm1, xmm2
pmaxuw xmm1, xmm2
pmaxud xmm1, xmm2
pmulld xmm1, xmm2
phminposuw xmm1, xmm2
ptest xmm1, xmm2
ptest xmm1, xmmword ptr [rax]
pmovsxbw xmm1, qword ptr [rax]
pmovzxbw xmm1, xmm2
pmovsxbd xmm1, dword ptr [rax]
pmovzxbd xmm1, xmm2
pmovsxbq xmm1, word ptr [rax]
pmovzxbq xmm1, word ptr [rax]
pmovsxwd xmm1, xmm2
pmovzxwd xmm1, qword ptr [rax]
pmovsxwq xmm1, dword ptr [rax]
pmovzxwq xmm1, xmm2
pmovsxdq xmm1, xmm2
pmovzxdq xmm1, qword ptr [rax]
movntdqa xmm1, xmmword ptr [rax]
roundps xmm1, xmm2, 1
roundpd xmm1, xmm2, 1
roundss xmm1, dword ptr [rax], 1
roundsd xmm1, qword ptr [rax], 1
blendps xmm1, xmm2, 5
blendpd xmm1, xmm2, 1
pblendw xmm1, xmm2, 0x0f
pextrb eax, xmm1, 3
pextrb byte ptr [rax], xmm1, 3
pextrw word ptr [rax], xmm1, 3
pextrd eax, xmm1, 3
pextrd dword ptr [rax], xmm1, 3
pextrq rax, xmm1, 1
pextrq qword ptr [rax], xmm1, 1
extractps eax, xmm1, 3
extractps dword ptr [rax], xmm1, 3
pinsrb xmm1, eax, 3
pinsrb xmm1, byte ptr [rax], 3
insertps xmm1, xmm2, 0x10
insertps xmm1, dword ptr [rax], 0x10
pinsrd xmm1, eax, 3
pinsrq xmm1, rax, 1
pinsrq xmm1, qword ptr [rax], 1
dpps xmm1, xmm2, 0xff
dppd xmm1, xmm2, 0x31
mpsadbw xmm1, xmm2, 5
pcmpgtq xmm1, xmm2
pcmpestrm xmm1, xmm2, 0x0c
pcmpestri xmm1, xmmword ptr [rax], 0x0c
pcmpistrm xmm1, xmm2, 0x0c
pcmpistri xmm1, xmmword ptr [rax], 0x0c
aesimc xmm1, xmm2
aesenc xmm1, xmm2
aesenclast xmm1, xmm2
aesdec xmm1, xmm2
aesdeclast xmm1, xmm2
aeskeygenassist xmm1, xmm2, 1
pclmulqdq xmm1, xmm2, 0x12
sha1nexte xmm1, xmm2
sha1msg1 xmm1, xmmword ptr [rax]
sha1msg2 xmm9, xmm2
sha256rnds2 xmm1, xmm2
sha256msg1 xmm1, xmm2
sha256msg2 xmm1, xmm10
sha1rnds4 xmm1, xmm2, 3
"""

# SSE oracle cases: (oracle op, asm, xmm destination, source, general-purpose register, imm).
# source: an XMM number, "m" (memory operand [rdx+rsi*2+0x30]) or None.
ORACLE = [
    ("PXOR", "pxor xmm3, xmm12", 3, 12, None, None),
    ("PXOR", "pxor xmm9, xmmword ptr [rdx+rsi*2+0x30]", 9, "m", None, None),
    ("POR", "por xmm0, xmm15", 0, 15, None, None),
    ("PAND", "pand xmm14, xmm1", 14, 1, None, None),
    ("PANDN", "pandn xmm5, xmmword ptr [rdx+rsi*2+0x30]", 5, "m", None, None),
    ("PADDB", "paddb xmm2, xmm2", 2, 2, None, None),
    ("PADDW", "paddw xmm7, xmm8", 7, 8, None, None),
    ("PADDD", "paddd xmm13, xmm6", 13, 6, None, None),
    ("PADDD", "paddd xmm4, xmmword ptr [rdx+rsi*2+0x30]", 4, "m", None, None),
    ("PADDQ", "paddq xmm1, xmm10", 1, 10, None, None),
    ("PSUBB", "psubb xmm11, xmm12", 11, 12, None, None),
    ("PSUBW", "psubw xmm3, xmm4", 3, 4, None, None),
    ("PSUBD", "psubd xmm6, xmm9", 6, 9, None, None),
    ("PSUBQ", "psubq xmm15, xmm0", 15, 0, None, None),
    ("PUNPCKLBW", "punpcklbw xmm1, xmm2", 1, 2, None, None),
    ("PUNPCKLWD", "punpcklwd xmm10, xmm11", 10, 11, None, None),
    ("PUNPCKLDQ", "punpckldq xmm3, xmmword ptr [rdx+rsi*2+0x30]", 3, "m", None, None),
    ("PUNPCKLQDQ", "punpcklqdq xmm12, xmm4", 12, 4, None, None),
    ("PUNPCKHBW", "punpckhbw xmm5, xmm13", 5, 13, None, None),
    ("PUNPCKHWD", "punpckhwd xmm6, xmm7", 6, 7, None, None),
    ("PUNPCKHDQ", "punpckhdq xmm8, xmm9", 8, 9, None, None),
    ("PUNPCKHQDQ", "punpckhqdq xmm0, xmmword ptr [rdx+rsi*2+0x30]", 0, "m", None, None),
    ("PSHUFB", "pshufb xmm4, xmm11", 4, 11, None, None),
    ("PSHUFB", "pshufb xmm12, xmmword ptr [rdx+rsi*2+0x30]", 12, "m", None, None),
    ("PCMPEQB", "pcmpeqb xmm1, xmm9", 1, 9, None, None),
    ("PCMPEQD", "pcmpeqd xmm2, xmm3", 2, 3, None, None),
    ("PCMPGTB", "pcmpgtb xmm14, xmm15", 14, 15, None, None),
    ("PMINUB", "pminub xmm0, xmm1", 0, 1, None, None),
    ("PMAXUB", "pmaxub xmm9, xmmword ptr [rdx+rsi*2+0x30]", 9, "m", None, None),
    ("PMULUDQ", "pmuludq xmm5, xmm6", 5, 6, None, None),
    ("PMADDWD", "pmaddwd xmm7, xmm12", 7, 12, None, None),
    ("PSADBW", "psadbw xmm8, xmm3", 8, 3, None, None),
    ("PACKUSWB", "packuswb xmm10, xmm1", 10, 1, None, None),
    ("PSRLW_X", "psrlw xmm1, xmm2", 1, 2, None, None),
    ("PSRLD_X", "psrld xmm11, xmm4", 11, 4, None, None),
    ("PSRLQ_X", "psrlq xmm3, xmmword ptr [rdx+rsi*2+0x30]", 3, "m", None, None),
    ("PSLLD_X", "pslld xmm6, xmm14", 6, 14, None, None),
    ("PSRAD_X", "psrad xmm13, xmm5", 13, 5, None, None),
    ("MOVDQA", "movdqa xmm7, xmm8", 7, 8, None, None),
    ("MOVDQA", "movdqa xmm15, xmmword ptr [rdx+rsi*2+0x30]", 15, "m", None, None),
    ("ADDPS", "addps xmm1, xmm2", 1, 2, None, None),
    ("MULPD", "mulpd xmm9, xmm10", 9, 10, None, None),
    ("XORPS", "xorps xmm3, xmmword ptr [rdx+rsi*2+0x30]", 3, "m", None, None),
    ("UNPCKLPS", "unpcklps xmm12, xmm13", 12, 13, None, None),
    ("PMOVMSKB_G", "pmovmskb r10d, xmm7", 7, None, 10, None),
    ("PMOVMSKB_G", "pmovmskb eax, xmm14", 14, None, 0, None),
    ("MOVD_TO_XMM_G", "movd xmm5, r9d", 5, None, 9, None),
    ("MOVQ_TO_XMM_G", "movq xmm12, rbx", 12, None, 3, None),
    ("MOVD_FROM_XMM_G", "movd r14d, xmm2", 2, None, 14, None),
    ("MOVQ_FROM_XMM_G", "movq rcx, xmm11", 11, None, 1, None),
    ("PTEST", "ptest xmm1, xmm2", 1, 2, None, None),
    ("PTEST", "ptest xmm9, xmmword ptr [rdx+rsi*2+0x30]", 9, "m", None, None),
    ("COMISS", "comiss xmm3, xmm4", 3, 4, None, None),
    ("UCOMISD", "ucomisd xmm10, xmm0", 10, 0, None, None),
]
ORACLE_IMM = [
    ("PSHUFD_I", "pshufd xmm1, xmm9, {imm}", 1, 9),
    ("PSHUFD_I", "pshufd xmm10, xmmword ptr [rdx+rsi*2+0x30], {imm}", 10, "m"),
    ("PSHUFHW_I", "pshufhw xmm3, xmm4, {imm}", 3, 4),
    ("PSHUFLW_I", "pshuflw xmm5, xmm6, {imm}", 5, 6),
    ("PALIGNR_I", "palignr xmm7, xmm15, {imm}", 7, 15),
    ("PALIGNR_I", "palignr xmm8, xmmword ptr [rdx+rsi*2+0x30], {imm}", 8, "m"),
    ("SHUFPS_I", "shufps xmm11, xmm2, {imm}", 11, 2),
    ("PBLENDW_I", "pblendw xmm12, xmm13, {imm}", 12, 13),
    ("PSRLD_I", "psrld xmm9, {imm}", 9, None),
    ("PSLLD_I", "pslld xmm1, {imm}", 1, None),
    ("PSRLQ_I", "psrlq xmm14, {imm}", 14, None),
    ("PSLLQ_I", "psllq xmm2, {imm}", 2, None),
    ("PSRLDQ_I", "psrldq xmm3, {imm}", 3, None),
    ("PSLLDQ_I", "pslldq xmm13, {imm}", 13, None),
    ("PSRAW_I", "psraw xmm4, {imm}", 4, None),
    ("PEXTRW_GI", "pextrw r11d, xmm6, {imm}", 6, "g11"),
    ("PINSRW_GI", "pinsrw xmm6, r12d, {imm}", 6, "g12"),
    ("PCMPISTRI_I", "pcmpistri xmm1, xmm2, {imm}", 1, 2),
]
IMMEDIATES = [0x00, 0x01, 0x04, 0x07, 0x0F, 0x1B, 0x39, 0x4E, 0x93, 0xB1, 0xE4, 0xFF]

# A BLAKE2s-style mixing sequence (written for this test, in the style of the kernel's SSSE3 code):
# `entry` loads XMM0-15 from [rsi], calls `block`, stores XMM0-15, RAX and RFLAGS back to [rsi]. The
# emulator runs `block` instruction by instruction; the host runs the whole program natively.
PROGRAM = """
entry:
movdqu xmm0, [rsi]
movdqu xmm1, [rsi+0x10]
movdqu xmm2, [rsi+0x20]
movdqu xmm3, [rsi+0x30]
movdqu xmm4, [rsi+0x40]
movdqu xmm5, [rsi+0x50]
movdqu xmm6, [rsi+0x60]
movdqu xmm7, [rsi+0x70]
movdqu xmm8, [rsi+0x80]
movdqu xmm9, [rsi+0x90]
movdqu xmm10, [rsi+0xa0]
movdqu xmm11, [rsi+0xb0]
movdqu xmm12, [rsi+0xc0]
movdqu xmm13, [rsi+0xd0]
movdqu xmm14, [rsi+0xe0]
movdqu xmm15, [rsi+0xf0]
xor eax, eax
push rsi
call block
pop rsi
movdqu [rsi], xmm0
movdqu [rsi+0x10], xmm1
movdqu [rsi+0x20], xmm2
movdqu [rsi+0x30], xmm3
movdqu [rsi+0x40], xmm4
movdqu [rsi+0x50], xmm5
movdqu [rsi+0x60], xmm6
movdqu [rsi+0x70], xmm7
movdqu [rsi+0x80], xmm8
movdqu [rsi+0x90], xmm9
movdqu [rsi+0xa0], xmm10
movdqu [rsi+0xb0], xmm11
movdqu [rsi+0xc0], xmm12
movdqu [rsi+0xd0], xmm13
movdqu [rsi+0xe0], xmm14
movdqu [rsi+0xf0], xmm15
mov [rsi+0x100], rax
pushfq
pop rcx
mov [rsi+0x108], rcx
ret
block:
movdqu xmm0, [rdi]
movdqu xmm1, [rdi+0x10]
movdqa xmm2, [rip+iv0]
movdqa xmm3, [rip+iv1]
movd xmm4, dword ptr [rdi+0x20]
movq xmm5, qword ptr [rdi+0x28]
paddd xmm0, xmm1
paddd xmm0, xmm4
pxor xmm3, xmm0
pshufb xmm3, [rip+ror16]
paddd xmm2, xmm3
pxor xmm1, xmm2
movdqa xmm8, xmm1
psrld xmm1, 12
pslld xmm8, 20
por xmm1, xmm8
paddd xmm0, xmm5
paddd xmm0, xmm1
pxor xmm3, xmm0
pshufb xmm3, xmmword ptr [rip+ror8]
paddd xmm2, xmm3
pxor xmm1, xmm2
movdqa xmm8, xmm1
psrld xmm1, 7
pslld xmm8, 25
por xmm1, xmm8
pshufd xmm0, xmm0, 0x93
pshufd xmm3, xmm3, 0x4e
pshufd xmm2, xmm2, 0x39
punpcklqdq xmm5, xmm4
punpckhdq xmm6, xmm5
palignr xmm6, xmm9, 8
paddq xmm7, xmm6
psrlq xmm7, 3
pand xmm10, xmm7
pandn xmm11, xmm0
psubd xmm12, xmm3
pcmpeqb xmm13, xmm2
pmovmskb eax, xmm13
movdqu [rdi+0x30], xmm0
movdqa [rdi+0x40], xmm1
movd dword ptr [rdi+0x50], xmm2
movq qword ptr [rdi+0x58], xmm3
pextrw word ptr [rdi+0x60], xmm7, 5
pinsrw xmm14, word ptr [rdi+0x2], 6
ptest xmm14, xmm15
block_end:
ret
.balign 16
iv0: .long 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a
iv1: .long 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
ror16: .byte 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13
ror8: .byte 1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12
"""


def assemble(lines, bits):
    """Returns [(bytes, objdump text)] for each line."""
    directive = {64: ".code64", 32: ".code32", 16: ".code16"}[bits]
    machine = {64: "i386:x86-64", 32: "i386", 16: "i8086"}[bits]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.s")
        obj = os.path.join(tmp, "out.o")
        raw = os.path.join(tmp, "out.bin")
        with open(src, "w") as f:
            f.write(".intel_syntax noprefix\n" + directive + "\n" + "\n".join(lines) + "\n")
        subprocess.run(["as", "--64" if bits == 64 else "--32", "-o", obj, src], check=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", obj, raw], check=True)
        out = subprocess.run(["objdump", "-D", "-b", "binary", "-m", machine, "-M", "intel", "--insn-width=15", raw],
                             check=True, capture_output=True, text=True).stdout
    result = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or not parts[0].strip().endswith(":"):
            continue
        data = [int(b, 16) for b in parts[1].split()]
        result.append((data, " ".join(parts[2].split())))
    if len(result) != len(lines):
        sys.exit(f"objdump gave {len(result)} instructions for {len(lines)} lines ({bits}-bit)")
    return result


def assemble_program(source):
    """Returns (bytes, {symbol: offset}) for a whole 64-bit program."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.s")
        obj = os.path.join(tmp, "out.o")
        raw = os.path.join(tmp, "out.bin")
        with open(src, "w") as f:
            f.write(".intel_syntax noprefix\n.code64\n" + source.strip() + "\n")
        subprocess.run(["as", "--64", "-o", obj, src], check=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", obj, raw], check=True)
        symbols = {}
        for line in subprocess.run(["nm", obj], check=True, capture_output=True, text=True).stdout.splitlines():
            value, _, name = line.split()
            symbols[name] = int(value, 16)
        with open(raw, "rb") as f:
            data = list(f.read())
    return data, symbols


def swift_bytes(data):
    return "[" + ", ".join(f"0x{b:02x}" for b in data) + "]"


def swift_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fixture_list(name, lines, bits):
    out = [f"    static let {name}: [AssembledInstruction] = ["]
    for source, (data, text) in zip(lines, assemble(lines, bits)):
        out.append(f"        AssembledInstruction(source: {swift_string(source)}, bytes: {swift_bytes(data)}, objdump: {swift_string(text)}),")
    out.append("    ]")
    return out


def optional(v):
    return "nil" if v is None else str(v)


def oracle_list():
    cases = []
    for op, asm, dst, src, gpr, imm in ORACLE:
        cases.append((op, asm, dst, src, gpr, imm))
    for op, template, dst, src in ORACLE_IMM:
        for imm in IMMEDIATES:
            gpr = None
            source = src
            if isinstance(src, str) and src.startswith("g"):
                gpr = int(src[1:])
                source = None
            cases.append((op, template.format(imm=f"0x{imm:x}"), dst, source, gpr, imm))
    assembled = assemble([c[1] for c in cases], 64)
    out = ["    static let sseOracle: [SSEOracleCase] = ["]
    for (op, asm, dst, src, gpr, imm), (data, _) in zip(cases, assembled):
        memory = "true" if src == "m" else "false"
        source = "nil" if src in (None, "m") else str(src)
        out.append(f"        SSEOracleCase(op: CX86_{op}, source: {swift_string(asm)}, bytes: {swift_bytes(data)}, "
                   f"xmmDestination: {dst}, xmmSource: {source}, memory: {memory}, gpr: {optional(gpr)}, immediate: {optional(imm)}),")
    out.append("    ]")
    return out


def generate():
    lines = [
        "// Generated by generate-fixtures.py from GNU as and objdump output. Do not edit by hand.",
        "import CX86Host",
        "",
        "enum AssembledFixtures {",
    ]
    def split(block):
        return [l for l in block.strip().splitlines() if l.strip()]
    lines += fixture_list("long64", split(LONG64), 64)
    lines += fixture_list("protected32", split(PROTECTED32), 32)
    lines += fixture_list("real16", split(REAL16), 16)
    lines += fixture_list("sse64", split(SSE64), 64)
    lines += oracle_list()
    data, symbols = assemble_program(PROGRAM)
    lines.append(f"    static let sseProgram = AssembledProgram(bytes: {swift_bytes(data)}, "
                 f"block: 0x{symbols['block']:x}, blockEnd: 0x{symbols['block_end']:x})")
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    text = generate()
    if "--check" in sys.argv:
        sys.stdout.write(text)
    else:
        with open(OUTPUT, "w") as f:
            f.write(text)
        print(f"wrote {OUTPUT}")
