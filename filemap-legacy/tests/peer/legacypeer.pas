{ A legacy TFileMap peer for the gateway's tests: speaks the old
  component's protocol exactly, with a hidden plain-Win32 top-level window
  in place of the TForm.

  - the map: a named pagefile-backed section <Name> of Size bytes, the
    text (TStringList.Text: each line + CR LF) NUL-terminated at offset 0;
  - writers take the mutex <Name>.Mtx for the copy, then
    SendMessage(HWND_BROADCAST, RegisterWindowMessage(<Name><Suffix>),
    OwnWindow, 0); readers take no lock;
  - a window that gets the message with wParam <> its own re-reads the
    text (and reports it here as "changed ...").

  Encodings: ansi (in a given code page, as a pre-2009 Delphi build with
  that system code page), utf16 (a Delphi 2009+ build whose copy is fixed)
  and utf16quirk (the unchanged component in a Delphi 2009+ build: it
  copies StrLen(P)+1 BYTES, so half the text and no terminator).

  Commands, one per line on standard input (text is UTF-8, lines joined
  by '|'):
    open NAME SIZE ENCODING CODEPAGE [SUFFIX]  -> opened existed=0|1
    write LINES                                -> written BYTES
    read                                       -> text LINES
    hang MS       stop pumping messages for MS milliseconds (a hung peer)
    hold          take the mutex and keep it      -> holding
    release       let it go                       -> released
    sendgw N MS   N times, MS ms apart, SendMessage the change message
                  to the gateway's window (class filemap-legacy-gateway,
                  title "filemap legacy NAME"), as a broadcast after a
                  write reaches it; the longest took -> sent max=MS
    quit                                       -> bye
  And, whenever another window broadcasts:     -> changed LINES
  Errors print "error ..." and go on. }
program legacypeer;

{$mode objfpc}{$H+}

uses
  Windows;

const
  WM_COMMAND_READY = WM_APP + 1;
  ENC_ANSI = 0;
  ENC_UTF16 = 1;
  ENC_QUIRK = 2;

var
  Wnd: HWND = 0;
  SynchMsg: UINT = 0;
  Section: THandle = 0;
  Mutex: THandle = 0;
  View: PByte = nil;
  MapSize: LongWord = 0;
  Encoding: Integer = ENC_ANSI;
  CodePage: UINT = CP_ACP;
  Queue: array of RawByteString;
  QueueLock: TRTLCriticalSection;
  InputDone: Boolean = False;
  OpenName: UnicodeString = '';

procedure Say(const S: RawByteString);
var
  Line: RawByteString;
  Written: DWORD;
begin
  Line := S + #10;
  WriteFile(GetStdHandle(STD_OUTPUT_HANDLE), Line[1], Length(Line), Written, nil);
end;

{ UTF-8 <-> UTF-16 and code pages, through the Windows calls. }
function Utf8ToWide(const S: RawByteString): UnicodeString;
var
  N: Integer;
begin
  Result := '';
  if S = '' then Exit;
  N := MultiByteToWideChar(CP_UTF8, 0, PAnsiChar(S), Length(S), nil, 0);
  SetLength(Result, N);
  MultiByteToWideChar(CP_UTF8, 0, PAnsiChar(S), Length(S), PWideChar(Result), N);
end;

function WideToBytes(const W: UnicodeString; Cp: UINT): RawByteString;
var
  N: Integer;
begin
  Result := '';
  if W = '' then Exit;
  N := WideCharToMultiByte(Cp, 0, PWideChar(W), Length(W), nil, 0, nil, nil);
  SetLength(Result, N);
  WideCharToMultiByte(Cp, 0, PWideChar(W), Length(W), PAnsiChar(Result), N, nil, nil);
end;

function BytesToWide(P: PAnsiChar; Len: Integer; Cp: UINT): UnicodeString;
var
  N: Integer;
begin
  Result := '';
  if Len = 0 then Exit;
  N := MultiByteToWideChar(Cp, 0, P, Len, nil, 0);
  SetLength(Result, N);
  MultiByteToWideChar(Cp, 0, P, Len, PWideChar(Result), N);
end;

{ 'a|b' -> TStringList.Text 'a'#13#10'b'#13#10; '' -> ''. }
function LinesToText(const Lines: UnicodeString): UnicodeString;
var
  I: Integer;
begin
  Result := '';
  if Lines = '' then Exit;
  for I := 1 to Length(Lines) do
    if Lines[I] = '|' then
      Result := Result + #13#10
    else
      Result := Result + Lines[I];
  Result := Result + #13#10;
end;

{ TStringList.Text -> 'a|b': breaks at CR LF, LF or CR; a final break
  ends the last line. }
function TextToLines(const Text: UnicodeString): UnicodeString;
var
  I: Integer;
begin
  Result := '';
  I := 1;
  while I <= Length(Text) do
  begin
    if Text[I] = #13 then
    begin
      Result := Result + '|';
      if (I < Length(Text)) and (Text[I + 1] = #10) then Inc(I);
    end
    else if Text[I] = #10 then
      Result := Result + '|'
    else
      Result := Result + Text[I];
    Inc(I);
  end;
  if (Result <> '') and (Result[Length(Result)] = '|') then
    SetLength(Result, Length(Result) - 1);
end;

{ The map's text, as the component's ReadMap does (no lock), bounded by
  the map's size. }
function ReadText: UnicodeString;
var
  N: LongWord;
  W: PWideChar;
begin
  if Encoding = ENC_ANSI then
  begin
    N := 0;
    while (N < MapSize) and (View[N] <> 0) do Inc(N);
    Result := BytesToWide(PAnsiChar(View), N, CodePage);
  end
  else
  begin
    W := PWideChar(View);
    N := 0;
    while (N < MapSize div 2) and (W[N] <> #0) do Inc(N);
    SetLength(Result, N);
    if N > 0 then Move(W^, Result[1], N * 2);
  end;
end;

procedure DoOpen(const Args: array of RawByteString);
var
  WName: UnicodeString;
  Suffix: RawByteString;
  Existed: Boolean;
  Code: Integer;
begin
  if Length(Args) < 4 then
  begin
    Say('error usage: open NAME SIZE ENCODING CODEPAGE [SUFFIX]');
    Exit;
  end;
  Val(Args[1], MapSize, Code);
  Val(Args[3], CodePage, Code);
  if Args[2] = 'ansi' then Encoding := ENC_ANSI
  else if Args[2] = 'utf16' then Encoding := ENC_UTF16
  else Encoding := ENC_QUIRK;
  Suffix := 'Synch-Now';
  if Length(Args) > 4 then Suffix := Args[4];
  WName := Utf8ToWide(Args[0]);
  OpenName := WName;
  Section := CreateFileMappingW(INVALID_HANDLE_VALUE, nil, PAGE_READWRITE, 0,
    MapSize, PWideChar(WName));
  Existed := GetLastError = ERROR_ALREADY_EXISTS;
  if Section = 0 then
  begin
    Say('error CreateFileMapping');
    Exit;
  end;
  View := MapViewOfFile(Section, FILE_MAP_ALL_ACCESS, 0, 0, 0);
  Mutex := CreateMutexW(nil, False, PWideChar(WName + '.Mtx'));
  SynchMsg := RegisterWindowMessageW(PWideChar(WName + Utf8ToWide(Suffix)));
  if Existed then Say('opened existed=1') else Say('opened existed=0');
end;

function IntToStrRaw(N: LongWord): RawByteString;
begin
  Str(N, Result);
end;

procedure DoWrite(const Lines: RawByteString);
var
  Text: UnicodeString;
  Bytes: RawByteString;
  N: LongWord;
  Src: Pointer;
begin
  Text := LinesToText(Utf8ToWide(Lines));
  if Encoding = ENC_ANSI then
  begin
    Bytes := WideToBytes(Text, CodePage);
    N := Length(Bytes) + 1;
    Src := PAnsiChar(Bytes);
  end
  else
  begin
    if Encoding = ENC_UTF16 then
      N := (Length(Text) + 1) * 2
    else
      N := Length(Text) + 1; { the component's StrLen(P)+1 bytes }
    Src := PWideChar(Text);
  end;
  if N > MapSize then
  begin
    Say('error too large');
    Exit;
  end;
  WaitForSingleObject(Mutex, INFINITE);
  Move(Src^, View^, N);
  ReleaseMutex(Mutex);
  SendMessageW(HWND_BROADCAST, SynchMsg, WPARAM(Wnd), 0);
  Say('written ' + IntToStrRaw(N));
end;

procedure DoSendGateway(const Args: RawByteString);
var
  P, N, Ms, Code, I: Integer;
  Start, Took, Longest: DWORD;
  Gateway: HWND;
begin
  P := Pos(' ', Args);
  Val(Copy(Args, 1, P - 1), N, Code);
  Val(Copy(Args, P + 1, Length(Args)), Ms, Code);
  Gateway := FindWindowW('filemap-legacy-gateway',
    PWideChar('filemap legacy ' + OpenName));
  if Gateway = 0 then
  begin
    Say('error no gateway window');
    Exit;
  end;
  Longest := 0;
  for I := 1 to N do
  begin
    Start := GetTickCount;
    SendMessageW(Gateway, SynchMsg, WPARAM(Wnd), 0);
    Took := GetTickCount - Start;
    if Took > Longest then Longest := Took;
    Sleep(Ms);
  end;
  Say('sent max=' + IntToStrRaw(Longest));
end;

procedure RunCommand(const Line: RawByteString);
var
  Verb, Rest: RawByteString;
  Args: array of RawByteString;
  P, Ms, Code: Integer;
begin
  P := Pos(' ', Line);
  if P = 0 then
  begin
    Verb := Line;
    Rest := '';
  end
  else
  begin
    Verb := Copy(Line, 1, P - 1);
    Rest := Copy(Line, P + 1, Length(Line));
  end;
  if Verb = 'open' then
  begin
    SetLength(Args, 0);
    while Rest <> '' do
    begin
      P := Pos(' ', Rest);
      if P = 0 then P := Length(Rest) + 1;
      SetLength(Args, Length(Args) + 1);
      Args[High(Args)] := Copy(Rest, 1, P - 1);
      Rest := Copy(Rest, P + 1, Length(Rest));
    end;
    DoOpen(Args);
  end
  else if Verb = 'write' then
    DoWrite(Rest)
  else if Verb = 'read' then
    Say('text ' + WideToBytes(TextToLines(ReadText), CP_UTF8))
  else if Verb = 'hang' then
  begin
    Val(Rest, Ms, Code);
    Say('hanging');
    Sleep(Ms);
    Say('awake');
  end
  else if Verb = 'hold' then
  begin
    WaitForSingleObject(Mutex, INFINITE);
    Say('holding');
  end
  else if Verb = 'sendgw' then
    DoSendGateway(Rest)
  else if Verb = 'release' then
  begin
    ReleaseMutex(Mutex);
    Say('released');
  end
  else if Verb = 'quit' then
  begin
    Say('bye');
    PostQuitMessage(0);
  end
  else
    Say('error unknown command ' + Verb);
end;

function WndProc(H: HWND; Msg: UINT; WP: WPARAM; LP: LPARAM): LRESULT; stdcall;
var
  Line: RawByteString;
  Have: Boolean;
begin
  Result := 0;
  if (SynchMsg <> 0) and (Msg = SynchMsg) then
  begin
    if HWND(WP) <> H then
      Say('changed ' + WideToBytes(TextToLines(ReadText), CP_UTF8));
    Exit;
  end;
  if Msg = WM_COMMAND_READY then
  begin
    repeat
      EnterCriticalSection(QueueLock);
      Have := Length(Queue) > 0;
      if Have then
      begin
        Line := Queue[0];
        Delete(Queue, 0, 1);
      end;
      LeaveCriticalSection(QueueLock);
      if Have then RunCommand(Line);
    until not Have;
    if InputDone then PostQuitMessage(0);
    Exit;
  end;
  Result := DefWindowProcW(H, Msg, WP, LP);
end;

{ Standard input, read on its own thread; each line is queued and the
  window told. }
function InputThread(Param: Pointer): PtrInt;
var
  C: AnsiChar;
  Got: DWORD;
  Line: RawByteString;
begin
  Result := 0;
  Line := '';
  while ReadFile(GetStdHandle(STD_INPUT_HANDLE), C, 1, Got, nil) and (Got = 1) do
  begin
    if C = #10 then
    begin
      EnterCriticalSection(QueueLock);
      SetLength(Queue, Length(Queue) + 1);
      Queue[High(Queue)] := Line;
      LeaveCriticalSection(QueueLock);
      PostMessageW(Wnd, WM_COMMAND_READY, 0, 0);
      Line := '';
    end
    else if C <> #13 then
      Line := Line + C;
  end;
  InputDone := True;
  PostMessageW(Wnd, WM_COMMAND_READY, 0, 0);
end;

var
  Cls: WNDCLASSW;
  M: MSG;
begin
  InitCriticalSection(QueueLock);
  FillChar(Cls, SizeOf(Cls), 0);
  Cls.lpfnWndProc := @WndProc;
  Cls.hInstance := HInstance;
  Cls.lpszClassName := 'LegacyPeerForm';
  RegisterClassW(Cls);
  { Top-level and never shown, as a TForm's handle: message-only windows
    get no broadcasts. }
  Wnd := CreateWindowExW(0, 'LegacyPeerForm', 'legacy peer', WS_OVERLAPPED,
    0, 0, 0, 0, 0, 0, HInstance, nil);
  if Wnd = 0 then
  begin
    Say('error CreateWindowEx failed (headless Wine needs Graphics=null)');
    Halt(1);
  end;
  Say('ready');
  BeginThread(@InputThread, nil);
  while GetMessageW(M, 0, 0, 0) do
  begin
    TranslateMessage(M);
    DispatchMessageW(M);
  end;
end.
